"""One function per headline KPI, shared by the overview, the detail pages, the API, exports and digests.

Each app that owns a headline KPI provides ``apps/<app>/kpis.py`` with a ``HEADLINE_KPIS`` list of
:class:`KpiDefinition`. A definition's ``compute`` takes the period and the filters and returns a
:class:`KpiValue`; the overview and ``/api/v1/kpis/`` call it, and the app's own page must call the
same function, so a figure is never computed two ways.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from django.apps import apps

from apps.core.periods import Period


class Direction(StrEnum):
    UP_IS_GOOD = "up"
    DOWN_IS_GOOD = "down"


@dataclass(frozen=True)
class KpiFilters:
    """Cuts every KPI may take; a KPI ignores the ones it does not have (and says so in ``KpiValue.note``)."""

    service: str | None = None  # Service.slug
    team: str | None = None  # Team.slug
    environment: str | None = None  # Environment.slug
    location: str | None = None  # Location.code
    product: str | None = None  # Product.slug


@dataclass
class KpiValue:
    key: str
    title: str
    unit: str
    direction: Direction
    url_name: str
    value: Decimal | None = None
    previous: Decimal | None = None
    target: Decimal | None = None
    rag: str | None = None  # "green" | "amber" | "red" | None (no target)
    sparkline: list[Decimal | None] = field(default_factory=list)  # oldest first, e.g. the last 12 periods
    n: int | None = None  # sample size where it matters (NPS responses)
    note: str = ""  # e.g. which data source is missing
    is_change: bool = False  # the value is itself a change against the previous period (it has no "previous")
    # The value grows as the period goes on (a sum or a count over it): while the period is not over it
    # reads low against a whole previous period, and its change says nothing yet.
    accumulates: bool = False

    @property
    def change(self) -> Decimal | None:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous

    @property
    def change_is_good(self) -> bool | None:
        change = self.change
        if change is None or change == 0:
            return None
        return (change > 0) == (self.direction == Direction.UP_IS_GOOD)


@dataclass(frozen=True)
class KpiDefinition:
    key: str
    title: str
    order: int
    compute: Callable[[Period, KpiFilters], KpiValue]


def headline_kpis() -> list[KpiDefinition]:
    found: list[KpiDefinition] = []
    for config in apps.get_app_configs():
        if not config.name.startswith("apps."):
            continue
        try:
            module = importlib.import_module(f"{config.name}.kpis")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.kpis":
                raise
            continue
        found.extend(getattr(module, "HEADLINE_KPIS", []))
    return sorted(found, key=lambda d: d.order)
