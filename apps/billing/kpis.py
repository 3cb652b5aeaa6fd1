"""Headline KPIs of billing: unit cost of service and total cloud cost (KPIS.md section 1).

**Unit cost across the portfolio.** Units differ per service (predictions, checkouts, store-days), so
adding them up, or averaging unit costs, means nothing. Without a service filter the headline is the
**cost-weighted average change of unit cost** against the previous period, in percent: each service
with a unit cost in both periods weighs in by its previous-period allocated cost. That equals what
producing last period's volumes would cost at this period's unit costs, relative to what they did
cost (a Laspeyres index), so "-3 %" means the same work got 3 % cheaper. With a service filter (or a
product, through its service) the headline is that service's unit cost in money per unit, with its
target. The unit cost page shows the same numbers, built by the same functions.
"""

from decimal import Decimal

from django.db.models import Count, Q, Sum

from apps.catalog.models import Product, Service
from apps.core.periods import Period
from apps.kpis.registry import Direction, KpiDefinition, KpiFilters, KpiValue

from . import reports
from .models import CostRollup

ZERO = Decimal(0)

UNIT_COST, CLOUD_COST = "unit_cost", "cloud_cost"
UNIT_COST_TITLE, CLOUD_COST_TITLE = "Unit cost of service", "Total cloud cost"


def _service_of(filters: KpiFilters) -> tuple[str | None, list[str]]:
    notes = []
    service = filters.service
    if filters.product:
        product = Product.objects.filter(slug=filters.product).select_related("service").first()
        if product is not None and product.service is not None:
            service = product.service.slug
        else:
            notes.append("the product has no service, so the figure is not cut by product")
    return service, notes


def _unit_cost_notes(filters: KpiFilters) -> list[str]:
    notes = []
    if filters.environment:
        notes.append("unit cost is not cut by environment (units are counted per service)")
    if filters.location:
        notes.append("unit cost is not cut by location (units are counted per service)")
    return notes


def unit_cost_scope(filters: KpiFilters) -> tuple[str | None, list[str] | None, list[str]]:
    """(one service slug or None, the service slugs in scope or None for all, notes)."""
    service, notes = _service_of(filters)
    notes += _unit_cost_notes(filters)
    if service:
        return service, [service], notes
    if filters.team:
        return None, list(Service.objects.filter(team__slug=filters.team).values_list("slug", flat=True)), notes
    return None, None, notes


def _percent(value: Decimal | None) -> Decimal | None:
    return None if value is None else value * 100


def unit_cost_value(
    report: reports.UnitCostReport, monthly: reports.MonthlyFigures, *, service: str | None, notes: list[str]
) -> KpiValue:
    """The headline from a unit cost report and its monthly figures (the page builds it the same way)."""
    notes = list(notes)
    kpi = KpiValue(
        key=UNIT_COST, title=UNIT_COST_TITLE, unit="", direction=Direction.DOWN_IS_GOOD, url_name="billing:unit-cost"
    )
    if service:
        row = next((r for r in report.rows if r.service.slug == service), None)
        svc = row.service if row else Service.objects.filter(slug=service).first()
        kpi.unit = f"{report.currency} per {svc.unit_name}".strip() if svc else ""
        if row is None or row.unit_cost is None:
            notes.append(f"no unit cost for {report.period.label}: cost or units missing")
        if row is not None:
            kpi.value, kpi.previous, kpi.target, kpi.rag = row.unit_cost, row.previous_unit_cost, row.target, row.rag
        if svc is not None:
            kpi.sparkline = [p.unit_cost for p in monthly.points(svc.pk)]
    else:
        kpi.unit = f"% change vs {report.previous_period.label}"
        kpi.is_change = True
        kpi.value = _percent(report.weighted_change)
        kpi.n = sum(1 for r in report.rows if r.change is not None)
        kpi.sparkline = [_percent(v) for v in reports.monthly_weighted_changes(monthly)]
        notes.append("cost-weighted average change of unit cost across services")
        if kpi.value is None:
            notes.append("no service has a unit cost in both periods")
    kpi.note = "; ".join(notes)
    return kpi


def unit_cost(period: Period, filters: KpiFilters) -> KpiValue:
    service, services, notes = unit_cost_scope(filters)
    report = reports.unit_cost_report(period, services=services)
    monthly = reports.monthly_figures(reports.trailing_months(period, 12), services=services)
    return unit_cost_value(report, monthly, service=service, notes=notes)


def cloud_cost_q(filters: KpiFilters) -> tuple[Q, list[str]]:
    """The rollup rows a cut of total cloud cost keeps."""
    service, notes = _service_of(filters)
    q = Q()
    if service:
        q &= Q(service__slug=service)
    if filters.team:
        q &= Q(service__team__slug=filters.team)
    if filters.environment:
        q &= Q(environment__slug=filters.environment)
    if filters.location:
        q &= Q(location__code=filters.location) | Q(location__parent__code=filters.location)
    return q, notes


def cloud_cost_figures(
    period: Period, months: list[Period], q: Q, *, cost: str = "effective"
) -> tuple[reports.CostTotals, reports.CostTotals, list[Decimal]]:
    """Totals of the period and the one before, and the cost of each month: one grouped query.

    The same figures as :func:`reports.cost_totals` for both periods and :func:`reports.monthly_total_cost`
    for the months, from the rollups of the whole span summed per day and currency (a few hundred rows
    whatever the number of rollups; grouping by the plain day is cheaper in the database than by month).
    """
    amount = reports.cost_field(cost)
    previous = period.previous()
    start = min(months[0].start, previous.start, period.start)
    end = max(months[-1].end, period.end)
    rows = list(
        CostRollup.objects.filter(reports._in(start, end))
        .filter(q)
        .values("day", "currency")
        .annotate(total=Sum(amount), unallocated=Sum(amount, filter=Q(service__isnull=True)), rows=Count("pk"))
        .order_by()
    )

    def totals(p: Period) -> reports.CostTotals:
        chosen = [r for r in rows if p.start <= r["day"] < p.end]
        currencies = sorted({r["currency"] for r in chosen if r["currency"]})
        return reports.CostTotals(
            sum((r["total"] or ZERO for r in chosen), ZERO),
            sum((r["unallocated"] or ZERO for r in chosen), ZERO),
            "mixed" if len(currencies) > 1 else currencies[0] if currencies else "",
            sum(r["rows"] for r in chosen),
        )

    monthly = [sum((r["total"] or ZERO for r in rows if m.start <= r["day"] < m.end), ZERO) for m in months]
    return totals(period), totals(previous), monthly


def cloud_cost(period: Period, filters: KpiFilters) -> KpiValue:
    """All cloud cost of the period (allocated or not), EffectiveCost; down is good."""
    q, notes = cloud_cost_q(filters)
    current, previous, monthly = cloud_cost_figures(period, reports.trailing_months(period, 12), q)
    if not current.rows:
        notes.append(f"no billing data for {period.label}")
    return KpiValue(
        key=CLOUD_COST,
        title=CLOUD_COST_TITLE,
        unit=current.currency or previous.currency,
        direction=Direction.DOWN_IS_GOOD,
        url_name="billing:explorer",
        accumulates=True,
        value=current.total if current.rows else None,
        previous=previous.total if previous.rows else None,
        sparkline=monthly if current.rows or previous.rows else [],
        note="; ".join(notes),
    )


HEADLINE_KPIS = [
    KpiDefinition(key=UNIT_COST, title=UNIT_COST_TITLE, order=10, compute=unit_cost),
    KpiDefinition(key=CLOUD_COST, title=CLOUD_COST_TITLE, order=20, compute=cloud_cost),
]
