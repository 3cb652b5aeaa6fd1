"""The period cost of a capacity pool, ``C(r)`` in KPIS.md section 2.

Cost providers are asked in order and the first that knows a pool's cost for the period wins; otherwise the pool
is priced at capacity x unit price: provisioned unit-hours x ``CapacityPool.unit_price_per_hour``.

Billing does not allocate cost to pools yet, so :func:`billing_allocated_cost` answers None. When it does (e.g.
an allocation rule that targets a pool, and a pool on ``CostRollup``), implement it there: return the pool's
allocated EffectiveCost for ``[start, end)`` (``apps.billing.selectors.cloud_cost`` cut by the pool), or None when
billing has no data for the pool in that window. Waste cost, the KPI and right-sizing then use it unchanged.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from apps.catalog.models import CapacityPool

BILLING = "billing"
UNIT_PRICE = "capacity x unit price"


@dataclass(frozen=True)
class PoolCost:
    amount: Decimal
    basis: str  # BILLING or UNIT_PRICE


def billing_allocated_cost(pool: CapacityPool, start: datetime, end: datetime) -> Decimal | None:
    """The pool's cost from billing allocation; None until billing allocates cost to pools."""
    return None


COST_PROVIDERS: list[Callable[[CapacityPool, datetime, datetime], Decimal | None]] = [billing_allocated_cost]


def unit_hours(value: float) -> Decimal:
    """Float capacity-hours as a Decimal, rounded to 9 places so float summation noise does not reach money."""
    return Decimal(repr(round(value, 9)))


def pool_cost(pool: CapacityPool, *, start: datetime, end: datetime, provisioned_unit_hours: float) -> PoolCost:
    for provider in COST_PROVIDERS:
        amount = provider(pool, start, end)
        if amount is not None:
            return PoolCost(amount, BILLING)
    return PoolCost(unit_hours(provisioned_unit_hours) * pool.unit_price_per_hour, UNIT_PRICE)
