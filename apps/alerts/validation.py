"""Checks of an alert rule and a silence that say exactly what is wrong; shared by the pages' forms and the API."""

from decimal import Decimal

from apps.core import netguard

from .evaluation import DRIFT_METRICS, LATENCY_LEVEL, kpi_definitions, labels_for
from .models import SCOPE_FIELDS, AlertRule, NotificationChannel, Silence

M = AlertRule.Metric
C = AlertRule.Comparison
MAX_WINDOW_MINUTES = 7 * 24 * 60
SHARE_METRICS = {M.ERROR_RATE: "Error rate", M.ACCURACY: "Accuracy"}
FIELD_NOUNS = {
    "model": "a model",
    "version": "a version",
    "environment": "an environment",
    "service": "a service",
    "pool": "a capacity pool",
    "location": "a location",
}


def _metric_noun(metric: str) -> str:
    return AlertRule.Metric(metric).label.split(" (")[0].lower()


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)


def normalise_rule(rule: AlertRule) -> None:
    """Fill what follows from other fields: a version implies its model; fields a metric does not use are cleared."""
    if rule.version_id and not rule.model_id:
        rule.model_id = rule.version.model_id
    if rule.metric != M.KPI:
        rule.kpi_key = ""
    if rule.metric != M.FEATURE_DRIFT:
        rule.feature = ""
    rule.feature = (rule.feature or "").strip()
    rule.group_by = [g for g in SCOPE_FIELDS if g in (rule.group_by or [])]


def rule_errors(rule: AlertRule, channels: list[NotificationChannel]) -> dict[str, list[str]]:
    """Every problem with the rule, by field ("__all__" for the rule as a whole)."""
    errors: dict[str, list[str]] = {}

    def err(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    metric = rule.metric
    if not metric:
        err("metric", "Choose what the rule measures.")
        return errors
    noun = _metric_noun(metric)
    allowed = labels_for(metric)

    # What: a KPI rule names its KPI.
    if metric == M.KPI:
        keys = kpi_definitions()
        if not rule.kpi_key:
            err(
                "kpi_key", f"Choose the headline KPI this rule watches ({', '.join(sorted(keys)) or 'none exist yet'})."
            )
        elif rule.kpi_key not in keys:
            err("kpi_key", f"'{rule.kpi_key}' is not a headline KPI; choose one of: {', '.join(sorted(keys))}.")

    # Scope: only labels the metric has, and consistent with each other.
    for name in SCOPE_FIELDS:
        if getattr(rule, f"{name}_id") and name not in allowed:
            err(
                name,
                f"{FIELD_NOUNS[name].capitalize()} does not apply to {noun}; it can be scoped by "
                f"{', '.join(allowed)}. Clear this field.",
            )
    if rule.version_id and rule.model_id and rule.version.model_id != rule.model_id:
        err("version", f"Version {rule.version.version} belongs to {rule.version.model.name}, not {rule.model.name}.")
    if rule.model_id and rule.service_id and rule.model.service_id != rule.service_id:
        err(
            "service",
            f"Model {rule.model.name} belongs to the service {rule.model.service.name}, not {rule.service.name}.",
        )
    if rule.pool_id and rule.environment_id and rule.pool.environment_id != rule.environment_id:
        err("environment", f"Pool {rule.pool.name} is in {rule.pool.environment.name}, not {rule.environment.name}.")
    unknown = [g for g in rule.group_by or [] if g not in allowed]
    if unknown and metric != M.KPI:
        err(
            "group_by",
            f"{noun.capitalize()} cannot be grouped by {', '.join(unknown)}; choose among {', '.join(allowed)}.",
        )

    # Drift.
    if metric in DRIFT_METRICS and rule.drift_method == AlertRule.DriftMethod.KS and rule.comparison in (C.GT, C.GTE):
        err(
            "comparison",
            "The K-S method gives a p-value, and drift is a small p-value: compare 'below' (e.g. below 0.05).",
        )

    # Threshold and recovery.
    threshold, recovery = rule.threshold, rule.recovery_threshold
    if threshold is None:
        err("threshold", "Enter the threshold the metric is compared with.")
    else:
        if metric in SHARE_METRICS and not (0 <= threshold <= 1):
            err(
                "threshold",
                f"{SHARE_METRICS[metric]} is a share between 0 and 1 (0.05 = 5 %); {_fmt(threshold)} would mean "
                f"{_fmt(threshold * 100)} %.",
            )
        if metric in DRIFT_METRICS and rule.drift_method == AlertRule.DriftMethod.KS and not (0 <= threshold <= 1):
            err("threshold", f"A p-value lies between 0 and 1; {_fmt(threshold)} is outside.")
        if (metric in LATENCY_LEVEL or metric in (M.THROUGHPUT, M.UTILISATION)) and threshold < 0:
            err("threshold", f"{noun.capitalize()} cannot be negative; {_fmt(threshold)} would never be crossed.")
        if recovery is not None:
            upward = rule.comparison in (C.GT, C.GTE)
            if upward and recovery > threshold:
                err(
                    "recovery_threshold",
                    f"The rule fires above {_fmt(threshold)}, so it must recover at or below it; {_fmt(recovery)} "
                    "is above the threshold.",
                )
            if not upward and recovery < threshold:
                err(
                    "recovery_threshold",
                    f"The rule fires below {_fmt(threshold)}, so it must recover at or above it; {_fmt(recovery)} "
                    "is below the threshold.",
                )

    # When.
    if metric != M.KPI:
        window = rule.window_minutes or 0
        if window < 60 or window % 60 or window > MAX_WINDOW_MINUTES:
            err(
                "window_minutes",
                f"The window must be a whole number of hours between 1 and {MAX_WINDOW_MINUTES // 60} (telemetry is "
                f"rolled up per hour): {window} minutes is not.",
            )
    if not rule.consecutive_breaches or not (1 <= rule.consecutive_breaches <= 1440):
        err("consecutive_breaches", "Between 1 (fire at the first breach) and 1440 consecutive evaluations.")
    repeat, group = rule.repeat_interval_minutes, rule.group_interval_minutes
    if repeat is not None and group is not None and repeat < group:
        err(
            "repeat_interval_minutes",
            f"The repeat interval ({repeat} min) must be at least the group interval ({group} min).",
        )

    # Who.
    if not rule.owner_user_id and not rule.owner_team_id:
        err("owner_user", "Choose an owner: a user or a team.")
    if rule.owner_user_id and rule.owner_team_id:
        err("owner_team", "Choose either a user or a team as the owner, not both.")
    if bool(rule.escalation_user_id) != bool(rule.escalate_after_minutes):
        if rule.escalation_user_id:
            err("escalate_after_minutes", "Say after how many minutes without acknowledgement to escalate.")
        else:
            err("escalation_user", "Name the second contact to escalate to when nobody acknowledges in time.")
    if rule.escalation_user_id:
        if rule.escalation_user_id == rule.owner_user_id:
            err("escalation_user", "The escalation contact must be someone other than the owner.")
        elif not rule.escalation_user.email:
            err(
                "escalation_user",
                f"{rule.escalation_user.username} has no email address, so an escalation cannot reach them.",
            )
    for channel in channels:
        if channel.kind == NotificationChannel.Kind.EMAIL and channel.email_owner and not channel.email_to:
            if rule.owner_user_id and not rule.owner_user.email:
                err(
                    "channels",
                    f"Channel {channel.name} emails the owner, but {rule.owner_user.username} has no address.",
                )
            if rule.owner_team_id and not hasattr(rule.owner_team, "alert_contact"):
                err(
                    "channels",
                    f"Channel {channel.name} emails the owner, but the team {rule.owner_team.name} has no alert "
                    "address (add one under Team alert contacts in the admin site).",
                )
    return errors


def channel_errors(channel: NotificationChannel) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    kinds = NotificationChannel.Kind
    if channel.kind == kinds.EMAIL:
        if not channel.email_to and not channel.email_owner:
            errors["email_to"] = ["List at least one address, or tick 'email the owner'."]
        bad = [a for a in channel.email_to or [] if "@" not in str(a)]
        if bad:
            errors.setdefault("email_to", []).append(f"Not email addresses: {', '.join(map(str, bad))}.")
    else:
        if not channel.url:
            errors["url"] = [f"A {channel.get_kind_display().lower()} channel needs a URL."]
        elif problem := netguard.url_problem(channel.url):
            errors["url"] = [problem[:1].upper() + problem[1:] + "."]
        if channel.kind == kinds.WEBHOOK and not channel.secret_env_var:
            errors["secret_env_var"] = [
                "Name the environment variable holding the signing secret, e.g. OPSPORTAL_ALERTS_WEBHOOK_SECRET; "
                "receivers verify the X-Opsportal-Signature header with it."
            ]
    return errors


def silence_errors(silence: Silence) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if silence.starts_at and silence.ends_at and silence.ends_at <= silence.starts_at:
        errors["ends_at"] = [
            f"The silence must end after it starts ({silence.starts_at:%Y-%m-%d %H:%M} UTC); "
            f"{silence.ends_at:%Y-%m-%d %H:%M} UTC is not later."
        ]
    if not (silence.comment or "").strip():
        errors["comment"] = ["Say why: the reason is shown with every alert the silence mutes."]
    if not silence.rule_id and not any(getattr(silence, f"{f}_id") for f in SCOPE_FIELDS):
        errors["__all__"] = [
            "A silence must match something: choose a rule or at least one label (model, environment …)."
        ]
    if silence.version_id and silence.model_id and silence.version.model_id != silence.model_id:
        errors["version"] = [
            f"Version {silence.version.version} belongs to {silence.version.model.name}, not {silence.model.name}."
        ]
    return errors
