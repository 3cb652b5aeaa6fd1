"""Reads of the alerts app for its pages and API: alerts, rules, silences, the audit trail and model health."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone

from apps.catalog.models import Environment, MLModel, ModelVersion
from apps.telemetry.selectors import WorkloadSeries, telemetry_grain, workload_telemetry

from .evaluation import DRIFT_METRICS, LATENCY_LEVEL, MODEL_METRICS
from .models import Alert, AlertRule, AuditEntry, EvaluatorState, Notification, Silence

A = Alert.State
HEALTH_METRICS = MODEL_METRICS | DRIFT_METRICS


# Alerts ------------------------------------------------------------------------------------------------------


def alert_list(*, state: str = "open", severity: str = "", rule: int | None = None, model: str = "") -> QuerySet:
    qs = Alert.objects.select_related(
        "rule", "owner_user", "owner_team", "acknowledged_by", "silenced_by", "model", "version", "environment"
    )
    if state == "open":
        qs = qs.filter(resolved_at__isnull=True)
    elif state in (A.PENDING, A.FIRING, A.RESOLVED):
        qs = qs.filter(state=state)
    if severity:
        qs = qs.filter(severity=severity)
    if rule:
        qs = qs.filter(rule_id=rule)
    if model:
        qs = qs.filter(model__slug=model)
    return qs.order_by("resolved_at", "-fired_at", "-started_at", "-pk") if state == "open" else qs


def alert_counts() -> dict[str, int]:
    return Alert.objects.filter(resolved_at__isnull=True).aggregate(
        open=Count("pk"),
        firing=Count("pk", filter=Q(state=A.FIRING, silenced_by__isnull=True)),
        pending=Count("pk", filter=Q(state=A.PENDING)),
        silenced=Count("pk", filter=Q(silenced_by__isnull=False)),
        # What still needs its owner: firing, not silenced, not acknowledged.
        unacknowledged=Count("pk", filter=Q(state=A.FIRING, silenced_by__isnull=True, acknowledged_at__isnull=True)),
    )


def alert_detail(pk: int) -> Alert:
    return Alert.objects.select_related(
        "rule",
        "rule__owner_user",
        "rule__owner_team",
        "rule__escalation_user",
        "owner_user",
        "owner_team",
        "acknowledged_by",
        "silenced_by",
        "silenced_by__created_by",
    ).get(pk=pk)


def alert_timeline(alert: Alert) -> list[AuditEntry]:
    """Every recorded event of the alert, oldest first: pending, firing, silenced, acknowledged, notified ..."""
    return list(AuditEntry.objects.filter(alert=alert).select_related("actor").order_by("at", "pk"))


def alert_notifications(alert: Alert) -> QuerySet[Notification]:
    return alert.notifications.select_related("channel").prefetch_related("attempt_log").order_by("created_at", "pk")


# Rules, silences, audit --------------------------------------------------------------------------------------


def rule_list() -> QuerySet[AlertRule]:
    return (
        AlertRule.objects.select_related(
            "model", "version", "environment", "service", "pool", "location", "owner_user", "owner_team"
        )
        .prefetch_related("channels")
        .annotate(
            firing=Count("alerts", filter=Q(alerts__state=A.FIRING)),
            pending=Count("alerts", filter=Q(alerts__state=A.PENDING)),
        )
        .order_by("name")
    )


def rule_recent_alerts(rule: AlertRule, limit: int = 20) -> QuerySet[Alert]:
    return rule.alerts.select_related("owner_user", "owner_team").order_by("-started_at")[:limit]


def silence_list(*, at: datetime | None = None) -> dict[str, list[Silence]]:
    at = at or timezone.now()
    silences = Silence.objects.select_related(
        "rule", "model", "version", "environment", "service", "pool", "location", "created_by"
    ).annotate(muted=Count("alerts", filter=Q(alerts__resolved_at__isnull=True)))
    return {
        "active": list(silences.filter(starts_at__lte=at, ends_at__gt=at).order_by("ends_at")),
        "upcoming": list(silences.filter(starts_at__gt=at).order_by("starts_at")),
        "expired": list(silences.filter(ends_at__lte=at).order_by("-ends_at")[:50]),
    }


def audit_list(*, target_type: str = "", target_id: int | None = None) -> QuerySet[AuditEntry]:
    qs = AuditEntry.objects.select_related("actor")
    if target_type:
        qs = qs.filter(target_type=target_type)
    if target_id:
        qs = qs.filter(target_id=target_id)
    return qs.order_by("-at", "-pk")


def evaluator_status() -> EvaluatorState:
    return EvaluatorState.get()


# Model health ------------------------------------------------------------------------------------------------


@dataclass
class HealthRow:
    model: MLModel
    version: ModelVersion | None
    environment: Environment | None
    rules: list[AlertRule] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    workload: WorkloadSeries | None = None

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.state == A.FIRING and a.silenced_by_id is None]

    @property
    def pending(self) -> list[Alert]:
        return [a for a in self.alerts if a.state == A.PENDING or a.silenced_by_id is not None]

    @property
    def status(self) -> str:
        """red: an unsilenced alert is firing; amber: breaching but not (yet, or loudly) firing; green: rules
        watch it and all is well; grey: no rule watches it."""
        if self.firing:
            return "red"
        if self.pending:
            return "amber"
        return "green" if self.rules else "grey"

    @property
    def status_label(self) -> str:
        return {"red": "Breaching SLA", "amber": "At risk", "green": "Meeting SLA", "grey": "No SLA rule"}[self.status]

    @property
    def key(self) -> str:
        version = self.version.version if self.version else ""
        return f"{self.model.slug}|{version}|{self.environment.slug if self.environment else ''}"


def rule_covers(rule: AlertRule, model: MLModel, version: ModelVersion | None, environment: Environment | None) -> bool:
    """Whether a rule's scope takes in this model version in this environment."""
    if rule.metric not in HEALTH_METRICS:
        return False
    if rule.model_id and rule.model_id != model.pk:
        return False
    if rule.service_id and rule.service_id != model.service_id:
        return False
    if rule.version_id and (version is None or rule.version_id != version.pk):
        return False
    return not (rule.environment_id and (environment is None or rule.environment_id != environment.pk))


def alert_applies(alert: Alert, model: MLModel, version: ModelVersion | None, environment: Environment | None) -> bool:
    if alert.model_id != model.pk:
        return False
    if alert.version_id and (version is None or alert.version_id != version.pk):
        return False
    return not (alert.environment_id and (environment is None or alert.environment_id != environment.pk))


def model_health(*, start: date, end: date, model: MLModel | None = None) -> list[HealthRow]:
    """Every model version by environment (where it has telemetry or alerts) with its SLA status and figures."""
    versions = ModelVersion.objects.exclude(stage=ModelVersion.Stage.ARCHIVED).select_related("model")
    models_qs = MLModel.objects.all()
    if model is not None:
        versions, models_qs = versions.filter(model=model), models_qs.filter(pk=model.pk)
    versions = list(versions.order_by("model__name", "-created_at"))
    models = {m.slug: m for m in models_qs}
    environments = {e.slug: e for e in Environment.objects.all()}
    workloads = workload_telemetry(start=start, end=end, grain=telemetry_grain(start, end), model=model)
    open_alerts = list(
        Alert.objects.filter(resolved_at__isnull=True, model__isnull=False).select_related("environment", "version")
    )
    rules = list(AlertRule.objects.filter(enabled=True, metric__in=HEALTH_METRICS))
    rows: dict[tuple, HealthRow] = {}

    def row(m: MLModel, v: ModelVersion | None, e: Environment | None) -> HealthRow:
        key = (m.pk, v.pk if v else None, e.pk if e else None)
        if key not in rows:
            rows[key] = HealthRow(m, v, e)
        return rows[key]

    by_model_version = {(v.model.slug, v.version): v for v in versions}
    for w in workloads:
        m = models.get(w.key.model_slug)
        if m is None:
            continue
        v = by_model_version.get((w.key.model_slug, w.key.version)) if w.key.version else None
        if w.key.version and v is None:
            continue  # an archived version
        row(m, v, environments.get(w.key.environment)).workload = w
    for alert in open_alerts:
        m = next((mm for mm in models.values() if mm.pk == alert.model_id), None)
        if m is not None and (alert.version is None or alert.version.stage != ModelVersion.Stage.ARCHIVED):
            row(m, alert.version, alert.environment)
    seen_versions = {r.version.pk for r in rows.values() if r.version}
    for v in versions:
        if v.pk not in seen_versions:
            row(v.model, v, None)
    for r in rows.values():
        r.rules = [rule for rule in rules if rule_covers(rule, r.model, r.version, r.environment)]
        r.alerts = [a for a in open_alerts if alert_applies(a, r.model, r.version, r.environment)]
    return sorted(
        rows.values(),
        key=lambda r: (
            r.model.name,
            r.version.version if r.version else "",
            r.environment.name if r.environment else "",
        ),
    )


def threshold_lines(
    *, model: MLModel, version: ModelVersion | None, environment: Environment | None
) -> dict[str, list[tuple[str, float]]]:
    """The thresholds of enabled latency and error-rate rules covering a model version, per metric, for charts."""
    lines: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for rule in AlertRule.objects.filter(enabled=True, metric__in=[*LATENCY_LEVEL, AlertRule.Metric.ERROR_RATE]):
        if rule_covers(rule, model, version, environment):
            lines[rule.metric].append((rule.name, float(rule.threshold)))
    return dict(lines)


@dataclass
class Comparison:
    model: MLModel
    environment: Environment | None
    champion: ModelVersion
    challenger: ModelVersion
    champion_workload: WorkloadSeries | None
    challenger_workload: WorkloadSeries | None
    champion_row: HealthRow | None
    challenger_row: HealthRow | None

    @property
    def metrics(self) -> list[tuple[str, object, object, str]]:
        """(label, champion value, challenger value, format) for the side-by-side table."""
        a, b = self.champion_workload, self.challenger_workload

        def get(w, attr):
            return getattr(w, attr) if w is not None else None

        return [
            ("Requests", get(a, "requests"), get(b, "requests"), "number"),
            ("Throughput (requests / s)", get(a, "throughput"), get(b, "throughput"), "rate"),
            ("Error rate", get(a, "error_rate"), get(b, "error_rate"), "percent"),
            ("Latency p50", get(a, "latency_p50"), get(b, "latency_p50"), "ms"),
            ("Latency p95", get(a, "latency_p95"), get(b, "latency_p95"), "ms"),
            ("Latency p99", get(a, "latency_p99"), get(b, "latency_p99"), "ms"),
        ]


def champion_challenger(
    *,
    model: MLModel,
    champion: ModelVersion,
    challenger: ModelVersion,
    environment: Environment | None,
    start: date,
    end: date,
) -> Comparison:
    """Two versions of one model side by side over the same window, from the same rollups."""
    grain = telemetry_grain(start, end)
    found = {}
    for version in (champion, challenger):
        series = workload_telemetry(
            start=start, end=end, grain=grain, model=model, version=version, environment=environment
        )
        found[version.pk] = series[0] if len(series) == 1 else _merge(series) if series else None
    health = {
        (r.version.pk if r.version else None): r
        for r in model_health(start=start, end=end, model=model)
        if (environment is None or r.environment == environment)
    }
    return Comparison(
        model,
        environment,
        champion,
        challenger,
        found[champion.pk],
        found[challenger.pk],
        health.get(champion.pk),
        health.get(challenger.pk),
    )


def _merge(series: list[WorkloadSeries]) -> WorkloadSeries:
    """Several environments of one version added together (percentiles weighted by sample count)."""
    merged = WorkloadSeries(series[0].key, series[0].seconds_per_bucket)
    for s in series:
        for b in s.ordered:
            target = merged.bucket(b.start)
            target.requests += b.requests
            target.errors += b.errors
            for level in ("p50", "p95", "p99"):
                value = getattr(b, level)
                if value is None:
                    continue
                have, n = getattr(target, level), target.latency_samples
                combined = (
                    value if have is None else (have * n + value * b.latency_samples) / max(n + b.latency_samples, 1)
                )
                setattr(target, level, combined)
            target.latency_samples += b.latency_samples
    return merged


def alerts_for_rules(rule_ids: list[int]) -> dict[int, list[Alert]]:
    out: dict[int, list[Alert]] = defaultdict(list)
    for alert in Alert.objects.filter(rule_id__in=rule_ids, resolved_at__isnull=True):
        out[alert.rule_id].append(alert)
    return out


def rule_with_history(pk: int) -> AlertRule:
    return (
        AlertRule.objects.select_related(
            "model",
            "version",
            "environment",
            "service",
            "pool",
            "location",
            "owner_user",
            "owner_team",
            "escalation_user",
        )
        .prefetch_related(Prefetch("channels"))
        .get(pk=pk)
    )
