"""Headline KPI of this app: model SLA attainment (KPIS.md section 4).

**Share of model versions in production meeting their SLA**, in percent, up is good. The versions counted are
those at the production stage that at least one enabled SLA rule watches (a rule on a model metric or drift whose
scope takes them in). A version meets its SLA in a period when none of its alerts, in a production environment
(or one naming no environment), was firing at any moment of the period; silenced alerts still count, since a
silence mutes notifications, not the breach. ``n`` is the number of versions counted; versions no rule watches
are named in the note. The model health page shows the same figure from this function.
"""

from datetime import UTC, datetime, time
from decimal import Decimal

from django.db.models import Q

from apps.catalog.models import Environment, ModelVersion, Product
from apps.core.periods import Period
from apps.kpis.registry import Direction, KpiDefinition, KpiFilters, KpiValue

KEY = "model_sla"
TITLE = "Model SLA health"
SPARK_PERIODS = 12


def _dt(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _versions(filters: KpiFilters) -> tuple[list[ModelVersion], list[str]]:
    notes = []
    qs = ModelVersion.objects.filter(stage=ModelVersion.Stage.PRODUCTION).select_related("model")
    service = filters.service
    if filters.product:
        product = Product.objects.filter(slug=filters.product).select_related("service").first()
        if product is not None and product.service is not None:
            service = product.service.slug
        else:
            notes.append("the product has no service, so the figure is not cut by product")
    if service:
        qs = qs.filter(model__service__slug=service)
    if filters.team:
        qs = qs.filter(model__team__slug=filters.team)
    if filters.location:
        notes.append("model SLA is not cut by location")
    return list(qs), notes


def _environments(filters: KpiFilters) -> list[int]:
    qs = (
        Environment.objects.filter(slug=filters.environment)
        if filters.environment
        else Environment.objects.filter(kind=Environment.Kind.PROD)
    )
    return list(qs.values_list("pk", flat=True))


def _covered(versions: list[ModelVersion], environments: list[int]) -> list[ModelVersion]:
    from .models import AlertRule
    from .selectors import HEALTH_METRICS

    rules = list(
        AlertRule.objects.filter(enabled=True, metric__in=HEALTH_METRICS).filter(
            Q(environment__isnull=True) | Q(environment_id__in=environments)
        )
    )
    covered = []
    for v in versions:
        for rule in rules:
            if rule.model_id and rule.model_id != v.model_id:
                continue
            if rule.service_id and rule.service_id != v.model.service_id:
                continue
            if rule.version_id and rule.version_id != v.pk:
                continue
            covered.append(v)
            break
    return covered


def _firing_intervals(versions: list[ModelVersion], environments: list[int], start: datetime, end: datetime):
    from .models import Alert

    rows = Alert.objects.filter(
        Q(environment__isnull=True) | Q(environment_id__in=environments),
        model_id__in={v.model_id for v in versions},
        fired_at__isnull=False,
        fired_at__lt=end,
    ).filter(Q(resolved_at__isnull=True) | Q(resolved_at__gt=start))
    return list(rows.values_list("model_id", "version_id", "fired_at", "resolved_at"))


def _attainment(versions, intervals, start: datetime, end: datetime) -> Decimal | None:
    if not versions:
        return None
    breached = set()
    for model_id, version_id, fired, resolved in intervals:
        if fired < end and (resolved is None or resolved > start):
            for v in versions:
                if v.model_id == model_id and version_id in (None, v.pk):
                    breached.add(v.pk)
    meeting = sum(1 for v in versions if v.pk not in breached)
    return (Decimal(100) * meeting / len(versions)).quantize(Decimal("0.1"))


def model_sla(period: Period, filters: KpiFilters) -> KpiValue:
    versions, notes = _versions(filters)
    environments = _environments(filters)
    covered = _covered(versions, environments)
    uncovered = [v for v in versions if v not in covered]
    if uncovered:
        names = ", ".join(str(v) for v in uncovered[:5]) + (" …" if len(uncovered) > 5 else "")
        n = len(uncovered)
        notes.append(f"{n} production version{' has' if n == 1 else 's have'} no SLA rule: {names}")
    periods = [period]
    for _ in range(SPARK_PERIODS - 1):
        periods.insert(0, periods[0].previous())
    previous = period.previous()
    earliest = min(_dt(periods[0].start), _dt(previous.start))
    intervals = _firing_intervals(covered, environments, earliest, _dt(period.end)) if covered else []
    kpi = KpiValue(
        key=KEY,
        title=TITLE,
        unit="%",
        direction=Direction.UP_IS_GOOD,
        url_name="alerts:model-health",
        value=_attainment(covered, intervals, period.start_dt, period.end_dt),
        previous=_attainment(covered, intervals, previous.start_dt, previous.end_dt),
        sparkline=[_attainment(covered, intervals, p.start_dt, p.end_dt) for p in periods],
        n=len(covered),
    )
    if not covered:
        notes.append("no production model version is watched by an SLA rule yet")
    kpi.note = "; ".join(notes)
    return kpi


HEADLINE_KPIS = [KpiDefinition(key=KEY, title=TITLE, order=50, compute=model_sla)]
