"""Headline KPI of this app: cost per feature shipped (KPIS.md section 3)."""

from apps.catalog.models import Product, Team
from apps.core.periods import Period
from apps.kpis.registry import Direction, KpiDefinition, KpiFilters, KpiValue

from .selectors import CostSeries, DeliveryScope, cost_series, trailing_periods

KEY = "cost_per_feature"
TITLE = "Cost per feature"


def scope_for(filters: KpiFilters) -> tuple[DeliveryScope, list[str]]:
    """The delivery scope of the filters, and the notes for the cuts this KPI does not have."""
    notes = []
    service = filters.service
    if filters.product:
        product = Product.objects.filter(slug=filters.product).select_related("service").first()
        if product is not None and product.service is not None:
            service = product.service.slug
        else:
            notes.append("the product has no service, so the figure is not cut by product")
    if filters.environment:
        notes.append("cost per feature is not cut by environment (its cloud part is all non-production)")
    if filters.location:
        notes.append("cost per feature is not cut by location")
    return DeliveryScope(team=filters.team, service=service), notes


def currency() -> str:
    """The teams' currency (labour rates and billing are in the billing currency); empty if they differ."""
    currencies = set(Team.objects.values_list("currency", flat=True).distinct())
    return currencies.pop() if len(currencies) == 1 else ""


def _unit() -> str:
    return f"{currency()} per feature".strip()


def kpi_value(series: CostSeries, *, notes: list[str] | None = None) -> KpiValue:
    """The headline value from a cost series: the page and the overview both build it here."""
    current, previous = series.current, series.previous
    notes = list(notes or [])
    if current.environments_missing:
        notes.append(f"no billing data for {current.period.label}: labour only, environment cost missing")
    if not current.features:
        notes.append(f"no feature shipped in {current.period.label}")
    return KpiValue(
        key=KEY,
        title=TITLE,
        unit=_unit(),
        direction=Direction.DOWN_IS_GOOD,
        url_name="delivery:overview",
        value=current.cost_per_feature,
        previous=previous.cost_per_feature if previous else None,
        sparkline=[p.cost_per_feature for p in series.points],
        n=current.features,
        note="; ".join(notes),
    )


def cost_per_feature(period: Period, filters: KpiFilters) -> KpiValue:
    scope, notes = scope_for(filters)
    return kpi_value(cost_series(trailing_periods(period), scope), notes=notes)


HEADLINE_KPIS = [KpiDefinition(key=KEY, title=TITLE, order=40, compute=cost_per_feature)]
