"""Headline KPI of this app: the cost of capacity waste (KPIS.md section 2), summed over the pools in scope.

``waste_cost(r) = C(r) * max(0, 1 - utilisation(r) / target_utilisation(r))`` per pool over the period, with
``C(r)`` from billing when it allocates cost to pools, otherwise capacity x unit price (``apps.capacity.costs``).
The capacity page shows the same figure by calling :func:`capacity_waste`.
"""

from apps.catalog.models import Team
from apps.core.periods import Period
from apps.kpis.registry import Direction, KpiDefinition, KpiFilters, KpiValue

from .selectors import pools_for, waste_by_period

KEY = "capacity_waste"
TITLE = "Capacity waste cost"
TRAILING_PERIODS = 6


def currency() -> str:
    """The billing currency (the teams' currency); empty if they differ."""
    currencies = set(Team.objects.values_list("currency", flat=True).distinct())
    return currencies.pop() if len(currencies) == 1 else ""


def trailing_periods(period: Period, count: int = TRAILING_PERIODS) -> list[Period]:
    periods = [period]
    while len(periods) < count:
        periods.insert(0, periods[0].previous())
    return periods


def capacity_waste(period: Period, filters: KpiFilters, *, environment: str = "", resource_type: str = "") -> KpiValue:
    """Total waste cost of the pools in scope for ``period``, with the previous period and a six-period trend."""
    pools = list(pools_for(filters, environment=environment, resource_type=resource_type))
    periods = trailing_periods(period)
    values = waste_by_period(pools, periods)
    notes = []
    if not pools:
        notes.append("no capacity pool matches these filters")
    elif values[-1] is None:
        notes.append(f"no capacity telemetry (used and provisioned) for {period.label}")
    return KpiValue(
        key=KEY,
        title=TITLE,
        unit=currency(),
        direction=Direction.DOWN_IS_GOOD,
        url_name="capacity:overview",
        accumulates=True,
        value=values[-1],
        previous=values[-2] if len(values) > 1 else None,
        sparkline=values,
        n=len(pools),
        note="; ".join(notes),
    )


HEADLINE_KPIS = [KpiDefinition(key=KEY, title=TITLE, order=30, compute=capacity_waste)]
