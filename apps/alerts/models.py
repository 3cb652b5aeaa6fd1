"""SLA alert rules over model telemetry and KPIs, the alerts they raise, silences, notifications and the audit trail.

States (as Prometheus and Grafana define them, see the README): an instance of a rule (one label set, e.g. one
model version in one environment) is **ok** while it has no open :class:`Alert`; the first breaching evaluation
opens an alert in **pending**; after ``consecutive_breaches`` breaching evaluations in a row it is **firing**; a
non-breaching evaluation resolves it (a pending alert that clears is resolved without ever having fired).

Idempotence rests on the database: at most one open alert per rule and instance (a partial unique constraint),
one notification per idempotency key (notification group + sequence number, or alert + escalation level), and
one evaluation per minute slot (a conditional update of :class:`EvaluatorState`).
"""

import hashlib
import json
from datetime import datetime

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from apps.catalog.models import CapacityPool, Environment, Location, MLModel, ModelVersion, Service, Team
from apps.core.models import TimeStampedModel

ENV_VAR_NAME = RegexValidator(
    r"^[A-Za-z_][A-Za-z0-9_]*$", "An environment variable name, e.g. OPSPORTAL_ALERTS_WEBHOOK_SECRET."
)
SCOPE_FIELDS = ("model", "version", "environment", "service", "pool", "location")


class NotificationChannel(TimeStampedModel):
    """Where notifications go: email, a signed webhook (Alertmanager-compatible or Slack-compatible JSON), or an
    external Alertmanager's ``POST /api/v2/alerts``.

    No secret is stored: ``secret_env_var`` names the environment variable (of the worker) holding the HMAC key.
    """

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook (Alertmanager-compatible JSON)"
        SLACK = "slack", "Slack-compatible webhook"
        ALERTMANAGER = "alertmanager", "Forward to an Alertmanager (POST /api/v2/alerts)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    email_to = models.JSONField(default=list, blank=True, help_text="Email addresses (email channels).")
    email_owner = models.BooleanField(
        default=False, help_text="Also email the alert's owner (a user's address, or the team's alert address)."
    )
    url = models.URLField(
        blank=True, help_text="Webhook URL, or the Alertmanager's base URL (e.g. http://alertmanager:9093)."
    )
    secret_env_var = models.CharField(
        max_length=100,
        blank=True,
        validators=[ENV_VAR_NAME],
        help_text="Environment variable holding the HMAC-SHA256 signing secret, e.g. OPSPORTAL_ALERTS_WEBHOOK_SECRET.",
    )
    send_resolved = models.BooleanField(default=True, help_text="Also notify when the alerts resolve.")
    timeout_seconds = models.PositiveIntegerField(default=10, validators=[MinValueValidator(1), MaxValueValidator(60)])
    max_attempts = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1), MaxValueValidator(20)])
    backoff_seconds = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="Delay before the first retry; it doubles with each retry (at most an hour).",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_webhook(self) -> bool:
        return self.kind in (self.Kind.WEBHOOK, self.Kind.SLACK, self.Kind.ALERTMANAGER)


class TeamAlertContact(models.Model):
    """The address alert emails to a team go to (the catalog's teams have no address of their own)."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="alert_contact")
    email = models.EmailField()

    def __str__(self) -> str:
        return f"{self.team}: {self.email}"


class AlertRule(TimeStampedModel):
    """An SLA threshold: a metric over a scope of telemetry series (or a KPI), compared with a threshold."""

    class Metric(models.TextChoices):
        LATENCY_P50 = "latency_p50", "Latency p50 (ms)"
        LATENCY_P95 = "latency_p95", "Latency p95 (ms)"
        LATENCY_P99 = "latency_p99", "Latency p99 (ms)"
        ERROR_RATE = "error_rate", "Error rate (share of requests, 0-1)"
        THROUGHPUT = "throughput", "Throughput (requests per second)"
        ACCURACY = "accuracy", "Accuracy (0-1)"
        UTILISATION = "utilisation", "Capacity utilisation (used / provisioned, 0-1)"
        PREDICTION_DRIFT = "prediction_drift", "Prediction drift"
        FEATURE_DRIFT = "feature_drift", "Feature drift"
        KPI = "kpi", "A headline KPI"

    class Comparison(models.TextChoices):
        GT = "gt", "above (>)"
        GTE = "gte", "at or above (≥)"
        LT = "lt", "below (<)"
        LTE = "lte", "at or below (≤)"

    class NoData(models.TextChoices):
        OK = "ok", "OK (resolve)"
        KEEP = "keep", "Keep the last state"
        ALERT = "alert", "Alert (counts as a breach)"

    class Severity(models.TextChoices):
        CRITICAL = "critical", "Critical"
        WARNING = "warning", "Warning"
        INFO = "info", "Info"

    class DriftMethod(models.TextChoices):
        PSI = "psi", "PSI (population stability index)"
        KS = "ks", "K-S test p-value (numeric, samples)"

    class DriftReference(models.TextChoices):
        PREVIOUS = "previous", "The days before the window"
        PUSHED = "pushed", "Distributions pushed as reference"

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    metric = models.CharField(max_length=20, choices=Metric.choices)
    kpi_key = models.CharField(max_length=40, blank=True, help_text="For KPI rules: the headline KPI's key.")
    feature = models.CharField(max_length=100, blank=True, help_text="Feature drift: one feature; empty = each one.")
    drift_method = models.CharField(max_length=8, choices=DriftMethod.choices, default=DriftMethod.PSI)
    drift_reference = models.CharField(max_length=10, choices=DriftReference.choices, default=DriftReference.PREVIOUS)
    drift_reference_days = models.PositiveIntegerField(default=7, validators=[MinValueValidator(1)])
    # Scope: each field narrows the series; empty means any value.
    model = models.ForeignKey(MLModel, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    pool = models.ForeignKey(CapacityPool, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    group_by = models.JSONField(
        default=list, blank=True, help_text="Labels that make one alert instance, e.g. model, version, environment."
    )
    comparison = models.CharField(max_length=4, choices=Comparison.choices, default=Comparison.GT)
    threshold = models.DecimalField(max_digits=24, decimal_places=8)
    recovery_threshold = models.DecimalField(max_digits=24, decimal_places=8, null=True, blank=True)
    window_minutes = models.PositiveIntegerField(default=60)
    consecutive_breaches = models.PositiveIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(1440)]
    )
    no_data = models.CharField(max_length=8, choices=NoData.choices, default=NoData.KEEP)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    owner_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    owner_team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    escalation_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    escalate_after_minutes = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    channels = models.ManyToManyField(NotificationChannel, blank=True, related_name="rules")
    runbook = models.TextField(blank=True)
    group_interval_minutes = models.PositiveIntegerField(default=5, validators=[MinValueValidator(0)])
    repeat_interval_minutes = models.PositiveIntegerField(default=240, validators=[MinValueValidator(1)])
    last_error = models.TextField(blank=True, editable=False, help_text="Why the last evaluation failed, if it did.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["enabled", "metric"])]

    def __str__(self) -> str:
        return self.name

    @property
    def owner_label(self) -> str:
        if self.owner_user_id:
            return self.owner_user.get_full_name() or self.owner_user.username
        return self.owner_team.name if self.owner_team_id else ""

    def scope_ids(self) -> dict[str, int]:
        return {f: getattr(self, f"{f}_id") for f in SCOPE_FIELDS if getattr(self, f"{f}_id")}


class Silence(TimeStampedModel):
    """Mutes notifications of matching alerts in ``[starts_at, ends_at)``; evaluation and recording go on."""

    rule = models.ForeignKey(
        AlertRule, null=True, blank=True, on_delete=models.CASCADE, related_name="silences", help_text="Empty: any."
    )
    model = models.ForeignKey(MLModel, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    pool = models.ForeignKey(CapacityPool, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    comment = models.TextField(help_text="Why: shown with every alert it mutes.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    class Meta:
        ordering = ["-starts_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")), name="silence_ends_after")
        ]

    def __str__(self) -> str:
        return f"Silence {self.pk}: {self.comment[:40]}"

    def is_active(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at

    def matches(self, alert: "Alert") -> bool:
        if self.rule_id and self.rule_id != alert.rule_id:
            return False
        return all(
            getattr(self, f"{f}_id") is None or getattr(self, f"{f}_id") == getattr(alert, f"{f}_id")
            for f in SCOPE_FIELDS
        )


def fingerprint(labels: dict) -> str:
    """A stable hash of an instance's label set (as Alertmanager identifies an alert)."""
    text = json.dumps({k: v for k, v in labels.items() if v not in (None, "")}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Alert(TimeStampedModel):
    """One episode of one rule instance, from its first breaching evaluation (pending) until it resolves."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    OPEN_STATES = (State.PENDING, State.FIRING)

    rule = models.ForeignKey(AlertRule, null=True, on_delete=models.SET_NULL, related_name="alerts")
    rule_name = models.CharField(max_length=120)
    fingerprint = models.CharField(max_length=16)
    labels = models.JSONField(default=dict, help_text="The instance's labels, by slug (model, version, ...).")
    model = models.ForeignKey(MLModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    pool = models.ForeignKey(CapacityPool, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    severity = models.CharField(max_length=10, choices=AlertRule.Severity.choices)
    value = models.FloatField(null=True, blank=True, help_text="The last evaluated value (empty: no data).")
    threshold = models.DecimalField(max_digits=24, decimal_places=8)
    breaches = models.PositiveIntegerField(default=0, help_text="Consecutive breaching evaluations.")
    started_at = models.DateTimeField(help_text="First breaching evaluation (pending).")
    fired_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=120, blank=True)
    last_evaluated_at = models.DateTimeField()
    owner_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    owner_team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ack_note = models.TextField(blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    silenced_by = models.ForeignKey(Silence, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")

    class Meta:
        ordering = ["-started_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "fingerprint"],
                condition=Q(resolved_at__isnull=True),
                name="alerts_one_open_per_instance",
            ),
            models.CheckConstraint(
                condition=Q(resolved_at__isnull=True, state__in=["pending", "firing"])
                | Q(resolved_at__isnull=False, state="resolved"),
                name="alerts_resolved_state_matches",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "-started_at"]),
            models.Index(fields=["model", "environment"]),
            models.Index(fields=["rule", "fingerprint"]),
        ]

    def __str__(self) -> str:
        return f"{self.rule_name} {self.label_text} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def label_text(self) -> str:
        return " · ".join(str(v) for v in self.labels.values() if v)

    @property
    def owner_label(self) -> str:
        if self.owner_user_id:
            return self.owner_user.get_full_name() or self.owner_user.username
        return self.owner_team.name if self.owner_team_id else ""


class EvaluatorState(models.Model):
    """Singleton: the last evaluated minute slot. Claiming a slot is a conditional update, so two workers (or a
    retried task) never evaluate the same minute twice; the row lock also keeps cycles from overlapping."""

    last_slot = models.DateTimeField(null=True, blank=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_duration_seconds = models.FloatField(null=True, blank=True)
    last_rules = models.PositiveIntegerField(default=0)
    last_transitions = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"last evaluated {self.last_slot:%Y-%m-%d %H:%M}" if self.last_slot else "not evaluated yet"

    @classmethod
    def get(cls) -> "EvaluatorState":
        state, _ = cls.objects.get_or_create(pk=1)
        return state


class NotificationGroup(models.Model):
    """The notification state of one rule on one channel, as an Alertmanager group: which instances the last
    message announced as firing, when it went, and its sequence number (the next message claims ``seq + 1``)."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="notification_groups")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="groups")
    seq = models.PositiveIntegerField(default=0)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    notified = models.JSONField(default=list, blank=True, help_text="Fingerprints the last message said were firing.")
    has_notified = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "channel"], name="alerts_one_group_per_rule_channel")]

    def __str__(self) -> str:
        return f"{self.rule_id} → {self.channel_id} #{self.seq}"


class Notification(models.Model):
    """One message to one channel (or to an escalation contact), delivered with retries; ``key`` makes it unique."""

    class Kind(models.TextChoices):
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"
        REPEAT = "repeat", "Repeat (still firing)"
        ESCALATION = "escalation", "Escalation"
        TEST = "test", "Test"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        RETRYING = "retrying", "Waiting to retry"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    key = models.CharField(max_length=80, unique=True)
    group = models.ForeignKey(NotificationGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    seq = models.PositiveIntegerField(default=0)
    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    channel = models.ForeignKey(
        NotificationChannel, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    alerts = models.ManyToManyField(Alert, blank=True, related_name="notifications")
    recipients = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=250, blank=True)
    payload = models.JSONField(default=dict, blank=True, help_text="The exact body sent (JSON) or the email text.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=5)
    next_attempt_at = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.channel or ', '.join(self.recipients)} ({self.status})"


class NotificationAttempt(models.Model):
    """One try at delivering a notification, with what the receiver answered."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    ok = models.BooleanField(default=False)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["notification", "number"]
        constraints = [models.UniqueConstraint(fields=["notification", "number"], name="alerts_one_attempt_per_number")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.notification_id}: {'ok' if self.ok else self.error or self.status_code}"


class AuditEntry(models.Model):
    """Who changed what, when, with the before and after values: rules, silences, channels and alerts.

    Entries with an ``alert`` make up that alert's timeline (pending, firing, acknowledged, notified, resolved).
    """

    class Target(models.TextChoices):
        RULE = "rule", "Rule"
        SILENCE = "silence", "Silence"
        CHANNEL = "channel", "Channel"
        ALERT = "alert", "Alert"

    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, help_text="The user's name, or 'evaluator' for automatic changes.")
    target_type = models.CharField(max_length=10, choices=Target.choices)
    target_id = models.PositiveBigIntegerField()
    target_repr = models.CharField(max_length=250)
    action = models.CharField(max_length=20)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    note = models.TextField(blank=True)
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="timeline")

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["target_type", "target_id"]), models.Index(fields=["-at"])]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.target_type} {self.target_repr}"

    @property
    def changes(self) -> list[tuple[str, object, object]]:
        """(field, before, after) for each field that differs; on creation, the fields that were filled in."""
        before, after = self.before or {}, self.after or {}
        empty = (None, "", [], {})
        return [
            (k, before.get(k), after.get(k))
            for k in sorted(set(before) | set(after))
            if before.get(k) != after.get(k) and not (self.before is None and after.get(k) in empty)
        ]


class Distribution(models.Model):
    """A distribution of a model's predictions (``feature`` empty) or of one input feature, over one window,
    pushed as raw samples, a histogram (bin edges and counts) or category counts. Drift rules compare a reference
    window's distributions with the current window's (PSI, or the K-S test for numeric samples)."""

    class Kind(models.TextChoices):
        NUMERIC = "numeric", "Numeric"
        CATEGORICAL = "categorical", "Categorical"

    key = models.CharField(max_length=300, unique=True, editable=False)
    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    feature = models.CharField(max_length=100, blank=True)
    ts = models.DateTimeField(help_text="Start of the window the distribution describes.")
    is_reference = models.BooleanField(default=False)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    samples = models.JSONField(null=True, blank=True)
    edges = models.JSONField(null=True, blank=True)
    counts = models.JSONField(null=True, blank=True)
    categories = models.JSONField(null=True, blank=True)
    n = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "feature", "ts"]
        indexes = [models.Index(fields=["model", "feature", "ts"])]

    def __str__(self) -> str:
        return f"{self.model_id} {self.feature or 'predictions'} @ {self.ts:%Y-%m-%d %H:%M}"

    @staticmethod
    def make_key(model_id, version_id, environment_id, feature: str, ts: datetime, is_reference: bool) -> str:
        side = "R" if is_reference else "C"
        return f"{model_id}|{version_id or ''}|{environment_id or ''}|{side}|{ts.isoformat()}|{feature}"
