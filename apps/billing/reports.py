"""What the billing pages, CSV exports and API read: unit cost, cost trends and breakdowns, the explorer.

Every figure comes from ``CostRollup`` (the daily rollups), aggregated in the database; only the
allocation-rule preview looks at line items, because it must show what a rule would claim. Pages,
exports and the API call these functions, so a number is computed one way only (KPIS.md section 1):

``unit_cost(service, period) = allocated_cost(service, period) / units(service, period)``

where ``allocated_cost`` is the service's direct cost plus its share of shared cost (EffectiveCost by
default, BilledCost selectable) and ``units`` the units of delivery imported for the period; a service
with no imported units falls back to telemetry when that app provides ``service_units``.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth, TruncWeek
from django.utils.timezone import localdate

from apps.catalog.models import Service
from apps.core.periods import Period, month_of

from .models import AllocationRule, BillingLineItem, BillingSource, CostRollup, Reallocation, UnitVolume
from .rollups import rule_q

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
COST_FIELDS = {"effective": "effective_cost", "billed": "billed_cost"}
COST_CHOICES = [
    ("effective", "EffectiveCost (amortised, after discounts and credits)"),
    ("billed", "BilledCost (as invoiced)"),
]
UNIT_COST_KPI = "unit_cost"


class ReportError(ValueError):
    """A report parameter that is not one of the accepted values; the message says which are."""


def reallocation_current() -> Reallocation | None:
    """The re-allocation to show: the one running or waiting (the oldest), else the last one."""
    active = Reallocation.objects.filter(status__in=[Reallocation.Status.QUEUED, Reallocation.Status.RUNNING])
    return (
        active.select_related("requested_by").order_by("created_at", "pk").first()
        or Reallocation.objects.select_related("requested_by").order_by("-created_at", "-pk").first()
    )


def cost_field(cost: str) -> str:
    try:
        return COST_FIELDS[cost]
    except KeyError:
        raise ReportError(f"cost {cost!r} is not one of: {', '.join(COST_FIELDS)}") from None


def _in(start: date, end: date) -> Q:
    return Q(day__gte=start, day__lt=end)


# --- Totals and currency ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostTotals:
    total: Decimal
    unallocated: Decimal
    currency: str  # "" when there is no cost, "mixed" when several currencies are stored
    rows: int = 0  # rollup rows behind the figures: 0 means no data, not a cost of zero

    @property
    def allocated(self) -> Decimal:
        return self.total - self.unallocated

    @property
    def unallocated_share(self) -> Decimal | None:
        """Unallocated cost as a fraction of all cost (None without cost)."""
        return self.unallocated / self.total if self.total else None

    @property
    def unallocated_percent(self) -> Decimal | None:
        return percent(self.unallocated_share)


def currency_of(qs: QuerySet[CostRollup]) -> str:
    currencies = sorted({c for c in qs.values_list("currency", flat=True).distinct().order_by() if c})
    if len(currencies) > 1:
        return "mixed"
    return currencies[0] if currencies else ""


def cost_totals(start: date, end: date, *, cost: str = "effective", q: Q | None = None) -> CostTotals:
    """All cost of ``[start, end)`` (optionally cut by ``q``) and the part no allocation rule claimed."""
    amount = cost_field(cost)
    qs = CostRollup.objects.filter(_in(start, end))
    if q is not None:
        qs = qs.filter(q)
    # One query: the sums per currency, which also says which currencies there are (as currency_of does).
    groups = list(
        qs.values("currency")
        .annotate(total=Sum(amount), unallocated=Sum(amount, filter=Q(service__isnull=True)), rows=Count("pk"))
        .order_by()
    )
    currencies = sorted({g["currency"] for g in groups if g["currency"]})
    return CostTotals(
        sum((g["total"] or ZERO for g in groups), ZERO),
        sum((g["unallocated"] or ZERO for g in groups), ZERO),
        "mixed" if len(currencies) > 1 else currencies[0] if currencies else "",
        sum(g["rows"] for g in groups),
    )


def has_cost_data() -> bool:
    return CostRollup.objects.exists()


# --- Unit cost ------------------------------------------------------------------------------------------


def _telemetry_units(service: Service, start: date, end: date) -> Decimal | None:
    """Units counted from telemetry, when the telemetry app provides them (it is optional here)."""
    try:
        from apps.telemetry.selectors import service_units
    except ImportError:
        return None
    value = service_units(service, start, end)
    return None if value is None else Decimal(str(value))


def allocated_costs(start: date, end: date, *, cost: str = "effective") -> dict[int, tuple[Decimal, Decimal]]:
    """Per service id: (allocated cost, of which shared cost) over ``[start, end)``; one query."""
    amount = cost_field(cost)
    rows = (
        CostRollup.objects.filter(_in(start, end), service__isnull=False)
        .values("service_id")
        .annotate(total=Sum(amount), shared=Sum(amount, filter=Q(is_shared=True)))
        .order_by()
    )
    return {r["service_id"]: (r["total"] or ZERO, r["shared"] or ZERO) for r in rows}


def unit_volumes(start: date, end: date) -> dict[int, Decimal]:
    """Per service id: units of delivery imported for ``[start, end)``; one query."""
    rows = (
        UnitVolume.objects.filter(day__gte=start, day__lt=end)
        .values("service_id")
        .annotate(units=Sum("units"))
        .order_by()
    )
    return {r["service_id"]: r["units"] for r in rows if r["units"] is not None}


@dataclass(frozen=True)
class Figures:
    """One service in one period."""

    cost: Decimal = ZERO  # allocated: direct + shared
    shared: Decimal = ZERO
    units: Decimal | None = None
    units_source: str = ""  # "imported", "telemetry" or "" (none)

    @property
    def direct(self) -> Decimal:
        return self.cost - self.shared

    @property
    def unit_cost(self) -> Decimal | None:
        if not self.units:  # None or zero: no unit cost rather than a division by zero
            return None
        return self.cost / self.units


def _figures(services: list[Service], start: date, end: date, cost: str) -> dict[int, Figures]:
    costs = allocated_costs(start, end, cost=cost)
    units = unit_volumes(start, end)
    out = {}
    for service in services:
        total, shared = costs.get(service.pk, (ZERO, ZERO))
        count, source = units.get(service.pk), "imported"
        if count is None:
            count, source = _telemetry_units(service, start, end), "telemetry"
        out[service.pk] = Figures(total, shared, count, source if count is not None else "")
    return out


def percent(fraction: Decimal | None) -> Decimal | None:
    return None if fraction is None else fraction * 100


def relative_change(current: Decimal | None, previous: Decimal | None) -> Decimal | None:
    """``current / previous - 1`` (a fraction), or None when either is missing or previous is not positive."""
    if current is None or previous is None or previous <= 0:
        return None
    return current / previous - 1


@dataclass
class UnitCostRow:
    service: Service
    current: Figures
    previous: Figures
    target: Decimal | None = None
    target_direction: str | None = None
    rag: str | None = None

    @property
    def unit_cost(self) -> Decimal | None:
        return self.current.unit_cost

    @property
    def previous_unit_cost(self) -> Decimal | None:
        return self.previous.unit_cost

    @property
    def change(self) -> Decimal | None:
        return relative_change(self.unit_cost, self.previous_unit_cost)

    @property
    def cost_change(self) -> Decimal | None:
        return relative_change(self.current.cost, self.previous.cost)

    @property
    def units_change(self) -> Decimal | None:
        return relative_change(self.current.units, self.previous.units)

    @property
    def change_percent(self) -> Decimal | None:
        return percent(self.change)

    @property
    def cost_change_percent(self) -> Decimal | None:
        return percent(self.cost_change)

    @property
    def units_change_percent(self) -> Decimal | None:
        return percent(self.units_change)


@dataclass
class UnitCostReport:
    period: Period
    previous_period: Period
    cost: str
    rows: list[UnitCostRow]
    totals: CostTotals
    previous_totals: CostTotals
    targets_available: bool  # whether the KPI targets app is installed
    targets_apply: bool  # targets are monthly: only a month has them

    @property
    def currency(self) -> str:
        return self.totals.currency or self.previous_totals.currency

    @property
    def has_data(self) -> bool:
        return bool(self.rows) or bool(self.totals.total) or bool(self.previous_totals.total)

    @property
    def weighted_change(self) -> Decimal | None:
        return weighted_unit_cost_change([(r.previous.cost, r.previous_unit_cost, r.unit_cost) for r in self.rows])


def weighted_unit_cost_change(items: list[tuple[Decimal, Decimal | None, Decimal | None]]) -> Decimal | None:
    """The cost-weighted average change of unit cost, as a fraction.

    ``items`` are (previous allocated cost, previous unit cost, current unit cost) per service. Each
    service with a unit cost in both periods and a positive previous cost weighs in by its previous
    cost, so this equals ``sum(current unit cost x previous units) / sum(previous cost) - 1``: what
    producing last period's volumes would cost at this period's unit costs (a Laspeyres index).
    """
    usable = [(c, p, n) for c, p, n in items if p is not None and n is not None and p > 0 and c > 0]
    weight = sum((c for c, _, _ in usable), ZERO)
    if not weight:
        return None
    return sum((c * (n / p) for c, p, n in usable), ZERO) / weight - 1


def targets_model():
    """The KPI targets model, when that app provides it."""
    try:
        from apps.kpis.models import Target
    except ImportError:
        return None
    return Target


def _apply_targets(rows: list[UnitCostRow], period: Period) -> tuple[bool, bool]:
    target_model = targets_model()
    if target_model is None:
        return False, False
    if period.kind != "month":
        return True, False
    from apps.kpis.registry import Direction
    from apps.kpis.targets import rag_for

    targets = {
        t.service_id: t
        for t in target_model.objects.filter(
            kpi=UNIT_COST_KPI, product__isnull=True, service_id__in=[r.service.pk for r in rows], month=period.start
        )
    }
    for row in rows:
        target = targets.get(row.service.pk)
        if target is None:
            continue
        row.target, row.target_direction = target.value, target.direction
        if row.unit_cost is not None:
            row.rag = str(rag_for(row.unit_cost, target.value, Direction(target.direction)))
    return True, True


def service_list(slugs: list[str] | None = None) -> list[Service]:
    qs = Service.objects.select_related("team").order_by("name")
    if slugs is not None:
        qs = qs.filter(slug__in=slugs)
    return list(qs)


def unit_cost_report(period: Period, *, cost: str = "effective", services: list[str] | None = None) -> UnitCostReport:
    """Unit cost per service for the period and the one before, with targets; services with neither cost
    nor units in either period are left out. ``services``: slugs to restrict to (None: all)."""
    chosen = service_list(services)
    previous = period.previous()
    now = _figures(chosen, period.start, period.end, cost)
    before = _figures(chosen, previous.start, previous.end, cost)
    rows = [
        UnitCostRow(s, now[s.pk], before[s.pk])
        for s in chosen
        if now[s.pk].cost or now[s.pk].units or before[s.pk].cost or before[s.pk].units
    ]
    rows.sort(key=lambda r: (-r.current.cost, r.service.name))
    available, apply = _apply_targets(rows, period)
    return UnitCostReport(
        period=period,
        previous_period=previous,
        cost=cost,
        rows=rows,
        totals=cost_totals(period.start, period.end, cost=cost),
        previous_totals=cost_totals(previous.start, previous.end, cost=cost),
        targets_available=available,
        targets_apply=apply,
    )


# --- Monthly trends ------------------------------------------------------------------------------------------


def trailing_months(period: Period, count: int = 12) -> list[Period]:
    """``count`` calendar months ending with the month the period ends in, oldest first."""
    last = month_of(period.end - relativedelta(days=1))
    return [
        Period("month", last.start - relativedelta(months=i), last.end - relativedelta(months=i))
        for i in reversed(range(count))
    ]


@dataclass
class MonthlyFigures:
    months: list[Period]
    figures: dict[int, list[Figures]] = field(default_factory=dict)  # service id -> one per month
    services: dict[int, Service] = field(default_factory=dict)

    def points(self, service_id: int) -> list[Figures]:
        return self.figures.get(service_id, [Figures() for _ in self.months])


def monthly_figures(
    months: list[Period], *, cost: str = "effective", services: list[str] | None = None
) -> MonthlyFigures:
    """Allocated cost and units per service per month: two grouped queries for all months and services."""
    amount = cost_field(cost)
    start, end = months[0].start, months[-1].end
    chosen = service_list(services)
    ids = [s.pk for s in chosen]
    costs: dict[tuple[int, date], tuple[Decimal, Decimal]] = {}
    # Summed per service and day (cheaper in the database than by month), then added up per month here.
    for r in (
        CostRollup.objects.filter(_in(start, end), service_id__in=ids)
        .values("service_id", "day")
        .annotate(total=Sum(amount), shared=Sum(amount, filter=Q(is_shared=True)))
        .order_by()
    ):
        key = (r["service_id"], r["day"].replace(day=1))
        total, shared = costs.get(key, (ZERO, ZERO))
        costs[key] = (total + (r["total"] or ZERO), shared + (r["shared"] or ZERO))
    units: dict[tuple[int, date], Decimal] = {}
    for r in (
        UnitVolume.objects.filter(day__gte=start, day__lt=end, service_id__in=ids)
        .annotate(month=TruncMonth("day"))
        .values("service_id", "month")
        .annotate(units=Sum("units"))
        .order_by()
    ):
        units[(r["service_id"], _as_date(r["month"]))] = r["units"]
    with_volumes = {sid for sid, _ in units}
    # Telemetry is asked month by month only for services without imported units that it has units for.
    from_telemetry = {s.pk for s in chosen if s.pk not in with_volumes and _telemetry_units(s, start, end) is not None}
    result = MonthlyFigures(months=months, services={s.pk: s for s in chosen})
    for service in chosen:
        points = []
        for month in months:
            total, shared = costs.get((service.pk, month.start), (ZERO, ZERO))
            count, source = units.get((service.pk, month.start)), "imported"
            if count is None and service.pk in from_telemetry:
                count, source = _telemetry_units(service, month.start, month.end), "telemetry"
            points.append(Figures(total, shared, count, source if count is not None else ""))
        result.figures[service.pk] = points
    return result


def _as_date(value) -> date:
    return value.date() if hasattr(value, "date") and callable(value.date) else value


def monthly_weighted_changes(monthly: MonthlyFigures) -> list[Decimal | None]:
    """The cost-weighted unit-cost change of each month against the month before (the first has none)."""
    out: list[Decimal | None] = [None]
    for i in range(1, len(monthly.months)):
        items = []
        for points in monthly.figures.values():
            before, now = points[i - 1], points[i]
            items.append((before.cost, before.unit_cost, now.unit_cost))
        out.append(weighted_unit_cost_change(items))
    return out


def monthly_total_cost(months: list[Period], *, cost: str = "effective", q: Q | None = None) -> list[Decimal]:
    """All cost (allocated or not) per month, optionally cut by ``q``: one grouped query."""
    amount = cost_field(cost)
    qs = CostRollup.objects.filter(_in(months[0].start, months[-1].end))
    if q is not None:
        qs = qs.filter(q)
    sums = {
        _as_date(r["month"]): r["total"]
        for r in qs.annotate(month=TruncMonth("day")).values("month").annotate(total=Sum(amount)).order_by()
    }
    return [sums.get(m.start) or ZERO for m in months]


# --- Dimensions: breakdowns and the explorer ----------------------------------------------------------------


@dataclass(frozen=True)
class Dimension:
    key: str
    label: str
    id_field: str  # what the rows are grouped by
    label_field: str  # what a group is called
    empty: str  # the name of the group with no value


DIMENSIONS: dict[str, Dimension] = {
    d.key: d
    for d in (
        Dimension("service", "Service", "service__slug", "service__name", "Unallocated"),
        Dimension("environment", "Environment", "environment__slug", "environment__name", "No environment"),
        Dimension("provider", "Provider", "provider", "provider", "No provider"),
        Dimension("sub_account", "Sub-account", "sub_account_id", "sub_account_id", "No sub-account"),
        Dimension("region", "Region", "region", "region", "No region"),
        Dimension("location", "Location", "location__code", "location__name", "No location"),
        Dimension("charge_category", "Charge category", "charge_category", "charge_category", "No category"),
    )
}
GRAINS = {"day": "Day", "week": "Week (from Monday)", "month": "Month"}
TOP_GROUPS = 12
OTHER = "Other"


def dimension(key: str) -> Dimension:
    try:
        return DIMENSIONS[key]
    except KeyError:
        raise ReportError(f"group_by {key!r} is not one of: {', '.join(DIMENSIONS)}") from None


def default_grain(period: Period) -> str:
    return "day" if period.days <= 62 else "week" if period.days <= 190 else "month"


@dataclass(frozen=True)
class CostFilters:
    """Cuts of the explorer and the breakdowns. ``service="unallocated"`` selects unallocated cost."""

    service: str | None = None
    environment: str | None = None
    provider: str | None = None

    def q(self) -> Q:
        q = Q()
        if self.service == "unallocated":
            q &= Q(service__isnull=True)
        elif self.service:
            q &= Q(service__slug=self.service)
        if self.environment:
            q &= Q(environment__slug=self.environment)
        if self.provider:
            q &= Q(provider=self.provider)
        return q


@dataclass(frozen=True)
class Group:
    key: str  # "" for the group with no value
    label: str
    total: Decimal


def _groups(rows: list[dict], dim: Dimension) -> dict[str, Group]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    labels: dict[str, str] = {}
    for r in rows:
        key = r["key"] or ""
        totals[key] += r["total"] or ZERO
        labels[key] = r["label"] or dim.empty
    return {k: Group(k, labels[k], totals[k]) for k in totals}


def _top(groups: dict[str, Group], limit: int) -> tuple[list[Group], set[str]]:
    """The ``limit`` largest groups by absolute cost, and the keys folded into "Other"."""
    ranked = sorted(groups.values(), key=lambda g: (-abs(g.total), g.label))
    return ranked[:limit], {g.key for g in ranked[limit:]}


def cost_breakdown(
    start: date,
    end: date,
    dim_key: str,
    *,
    cost: str = "effective",
    filters: CostFilters | None = None,
    limit: int = 10,
) -> list[Group]:
    """Cost by one dimension, largest first; past ``limit`` groups the rest is summed as "Other"."""
    dim, amount = dimension(dim_key), cost_field(cost)
    qs = CostRollup.objects.filter(_in(start, end))
    if filters:
        qs = qs.filter(filters.q())
    rows = list(qs.values(key=F(dim.id_field), label=F(dim.label_field)).annotate(total=Sum(amount)).order_by())
    groups = _groups(rows, dim)
    top, rest = _top(groups, limit)
    if rest:
        top.append(Group("__other__", OTHER, sum((groups[k].total for k in rest), ZERO)))
    return top


@dataclass
class Series:
    key: str
    label: str
    values: list[Decimal]

    @property
    def total(self) -> Decimal:
        return sum(self.values, ZERO)


@dataclass
class Explorer:
    start: date
    end: date
    group_by: str
    grain: str
    cost: str
    buckets: list[date]
    series: list[Series]
    currency: str

    @property
    def totals(self) -> list[Decimal]:
        return [sum((s.values[i] for s in self.series), ZERO) for i in range(len(self.buckets))]

    @property
    def rows(self) -> list[tuple[date, list[Decimal], Decimal]]:
        """The table: per bucket, each series' cost and the bucket's total."""
        totals = self.totals
        return [(b, [s.values[i] for s in self.series], totals[i]) for i, b in enumerate(self.buckets)]

    @property
    def total(self) -> Decimal:
        return sum((s.total for s in self.series), ZERO)


def _bucket(day: date, grain: str) -> date:
    if grain == "week":
        return day - relativedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    return day


def _buckets(start: date, end: date, grain: str) -> list[date]:
    out, day = [], _bucket(start, grain)
    step = {"day": relativedelta(days=1), "week": relativedelta(weeks=1), "month": relativedelta(months=1)}[grain]
    while day < end:
        out.append(day)
        day += step
    return out


def explore(
    start: date,
    end: date,
    *,
    group_by: str = "service",
    grain: str = "day",
    cost: str = "effective",
    filters: CostFilters | None = None,
    limit: int = TOP_GROUPS,
    today: date | None = None,
) -> Explorer:
    """Total cost over ``[start, end)`` by one dimension per day, week or month: one grouped query.

    The ``limit`` largest groups get their own series; the rest are summed as "Other".
    """
    dim, amount = dimension(group_by), cost_field(cost)
    if grain not in GRAINS:
        raise ReportError(f"grain {grain!r} is not one of: {', '.join(GRAINS)}")
    qs = CostRollup.objects.filter(_in(start, end))
    if filters:
        qs = qs.filter(filters.q())
    bucket = {"day": F("day"), "week": TruncWeek("day"), "month": TruncMonth("day")}[grain]
    rows = list(
        qs.annotate(bucket=bucket)
        .values("bucket", key=F(dim.id_field), label=F(dim.label_field))
        .annotate(total=Sum(amount))
        .order_by()
    )
    # Days still to come in the period have no cost yet: the chart and table stop at today.
    buckets = [b for b in _buckets(start, end, grain) if b <= (today or localdate())]
    index = {b: i for i, b in enumerate(buckets)}
    groups = _groups(rows, dim)
    top, rest = _top(groups, limit)
    series = {g.key: Series(g.key, g.label, [ZERO] * len(buckets)) for g in top}
    if rest:
        series["__other__"] = Series("__other__", OTHER, [ZERO] * len(buckets))
    for r in rows:
        key = r["key"] or ""
        position = index.get(_as_date(r["bucket"]))
        if position is None:  # dated after today: not expected, but never a crash
            continue
        target = series["__other__"] if key in rest else series[key]
        target.values[position] += r["total"] or ZERO
    return Explorer(start, end, group_by, grain, cost, buckets, list(series.values()), currency_of(qs))


def providers() -> list[str]:
    return list(
        CostRollup.objects.exclude(provider="").values_list("provider", flat=True).distinct().order_by("provider")
    )


# --- Sources and imports ------------------------------------------------------------------------------------


def source_list() -> QuerySet[BillingSource]:
    return BillingSource.objects.annotate(import_count=Count("imports"), last_import_at=Max("imports__created_at"))


def source_imports(source: BillingSource) -> QuerySet:
    return source.imports.select_related("started_by").order_by("-created_at")


# --- Units of service -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitSummary:
    service: Service
    units: Decimal | None
    days: int
    last_day: date | None


def unit_summary(period: Period) -> list[UnitSummary]:
    """Per service: units imported for the period, on how many days, and the newest day imported at all."""
    rows = {
        r["service_id"]: r
        for r in UnitVolume.objects.filter(day__gte=period.start, day__lt=period.end)
        .values("service_id")
        .annotate(units=Sum("units"), days=Count("day", distinct=True))
        .order_by()
    }
    last = dict(UnitVolume.objects.values("service_id").annotate(last=Max("day")).values_list("service_id", "last"))
    return [
        UnitSummary(s, rows.get(s.pk, {}).get("units"), rows.get(s.pk, {}).get("days", 0), last.get(s.pk))
        for s in service_list()
    ]


# --- Allocation rule preview -------------------------------------------------------------------------------

PREVIEW_SAMPLE = 10


@dataclass
class RulePreview:
    matches: int  # line items the rule's condition matches, whatever the order
    claims: int  # of those, the ones no earlier rule takes: what the rule would allocate
    billed: Decimal
    effective: Decimal
    unallocated_count: int  # claimed items that are unallocated today
    unallocated_effective: Decimal
    from_rules: list[tuple[str, int, Decimal]]  # (rule name, items, effective cost) taken from other rules
    sample: list[dict]
    currency: str
    warnings: list[str]

    @property
    def taken_by_earlier(self) -> int:
        return self.matches - self.claims


def _earlier_rules(rule: AllocationRule) -> Q:
    """Enabled rules that run before ``rule`` (lower order; equal order and created earlier)."""
    qs = AllocationRule.objects.filter(enabled=True)
    if rule.pk:
        qs = qs.exclude(pk=rule.pk).filter(Q(order__lt=rule.order) | Q(order=rule.order, pk__lt=rule.pk))
    else:
        qs = qs.filter(order__lte=rule.order)  # a new rule gets the highest id: equal orders run first
    q = Q(pk__in=[])
    for earlier in qs:
        q |= rule_q(earlier)
    return q


def rule_preview(rule: AllocationRule) -> RulePreview:
    """What an (unsaved) rule would claim: aggregated in the database over the stored line items."""
    matched = BillingLineItem.objects.filter(rule_q(rule))
    claimed = matched.exclude(_earlier_rules(rule))
    sums = claimed.aggregate(
        n=Count("pk"),
        billed=Sum("billed_cost"),
        effective=Sum("effective_cost"),
        free_n=Count("pk", filter=Q(allocation_rule__isnull=True)),
        free=Sum("effective_cost", filter=Q(allocation_rule__isnull=True)),
    )
    taken_q = Q(allocation_rule__isnull=False)
    if rule.pk:
        taken_q &= ~Q(allocation_rule_id=rule.pk)
    from_rules = [
        (r["allocation_rule__name"], r["n"], r["effective"] or ZERO)
        for r in claimed.filter(taken_q)
        .values("allocation_rule__name")
        .annotate(n=Count("pk"), effective=Sum("effective_cost"))
        .order_by("-effective")
    ]
    sample = list(
        claimed.order_by("-effective_cost").values(
            "charge_period_start",
            "provider_name",
            "sub_account_id",
            "service_name",
            "resource_id",
            "resource_name",
            "tags",
            "effective_cost",
            "billed_cost",
            "billing_currency",
        )[:PREVIEW_SAMPLE]
    )
    warnings = []
    if not rule.enabled:
        warnings.append("This rule is disabled: it claims nothing until it is enabled; the figures show what it would.")
    if (
        rule.shared
        and rule.spread == AllocationRule.Spread.DIRECT_COST
        and not CostRollup.objects.filter(service__isnull=False, is_shared=False).exists()
    ):
        warnings.append("No service has direct cost yet, so shared cost would stay unallocated until one does.")
    currencies = {s["billing_currency"] for s in sample}
    return RulePreview(
        matches=matched.count(),
        claims=sums["n"],
        billed=sums["billed"] or ZERO,
        effective=sums["effective"] or ZERO,
        unallocated_count=sums["free_n"],
        unallocated_effective=sums["free"] or ZERO,
        from_rules=from_rules,
        sample=sample,
        currency=currencies.pop() if len(currencies) == 1 else "",
        warnings=warnings,
    )
