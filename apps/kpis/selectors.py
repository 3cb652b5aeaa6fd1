"""The executive overview: every headline KPI for a period and filters, from the apps' own KPI functions."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from apps.catalog.models import Environment, Location, Service, Team
from apps.core.periods import Period

from .registry import Direction, KpiFilters, KpiValue, headline_kpis


@dataclass(frozen=True)
class Headline:
    key: str
    title: str
    unit: str
    direction: Direction
    url_name: str
    source: str


# The overview's tiles, in order. A KPI whose app has not registered it yet shows as waiting for its source.
HEADLINES = [
    Headline(
        "unit_cost",
        "Unit cost of service",
        "USD / unit",
        Direction.DOWN_IS_GOOD,
        "billing:unit-cost",
        "billing exports and units of service",
    ),
    Headline("cloud_cost", "Total cloud cost", "USD", Direction.DOWN_IS_GOOD, "billing:explorer", "billing exports"),
    Headline(
        "capacity_waste",
        "Capacity waste cost",
        "USD",
        Direction.DOWN_IS_GOOD,
        "capacity:overview",
        "capacity telemetry",
    ),
    Headline(
        "cost_per_feature", "Cost per feature", "USD", Direction.DOWN_IS_GOOD, "delivery:overview", "delivery data"
    ),
    Headline("model_sla", "Model SLA health", "%", Direction.UP_IS_GOOD, "alerts:model-health", "alert rules"),
    Headline("mau", "Monthly active users", "users", Direction.UP_IS_GOOD, "adoption:overview", "product events"),
    Headline("nps", "NPS", "score", Direction.UP_IS_GOOD, "adoption:overview", "survey responses"),
]


def overview(*, period: Period, filters: KpiFilters) -> list[KpiValue]:
    """One value per headline KPI, computed by the function its app registered (the same the app's page uses)."""
    computed = {definition.key: definition for definition in headline_kpis()}
    values: list[KpiValue] = []
    keys = [h.key for h in HEADLINES] + [k for k in computed if k not in {h.key for h in HEADLINES}]
    headlines = {h.key: h for h in HEADLINES}
    for key in keys:
        if key in computed:
            values.append(computed[key].compute(period, filters))
            continue
        h = headlines[key]
        values.append(
            KpiValue(
                key=h.key,
                title=h.title,
                unit=h.unit,
                direction=h.direction,
                url_name=h.url_name,
                note=f"Waiting for {h.source}",
            )
        )
    return values


def kpi_rows(values: list[KpiValue]) -> list[list]:
    """The overview as table rows (CSV export, digest attachment)."""
    return [
        [
            v.key,
            v.title,
            _plain(v.value),
            v.unit,
            _plain(v.previous),
            _plain(v.change),
            _plain(v.target),
            v.rag or "",
            v.n if v.n is not None else "",
            v.note,
        ]
        for v in values
    ]


KPI_HEADER = ["kpi", "title", "value", "unit", "previous", "change", "target", "rag", "n", "note"]


def _plain(value: Decimal | None) -> str:
    return "" if value is None else format(value.normalize() if value == value.to_integral() else value, "f")


def filter_choices() -> dict[str, list[tuple[str, str]]]:
    return {
        "service": list(Service.objects.values_list("slug", "name")),
        "team": list(Team.objects.values_list("slug", "name")),
        "environment": list(Environment.objects.values_list("slug", "name")),
        "location": list(Location.objects.filter(kind=Location.Kind.REGION).values_list("code", "name")),
    }


def month_start(day: date) -> date:
    return day.replace(day=1)
