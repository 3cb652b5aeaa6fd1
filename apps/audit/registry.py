"""Which models the audit trail records, and which of their fields it leaves out.

Only configuration is audited: high-volume data (billing line items and rollups, telemetry points, product
events, deliveries, alerts and notifications) is not. ``ignore`` lists fields that the portal itself keeps
up to date while it runs (last pull, lock, status, error); a save that changes only those is not recorded.
``created_at`` and ``updated_at`` are never recorded.

A model that is not installed (an optional app, a model another release adds) is skipped.
"""

import re
from dataclasses import dataclass, field

ALWAYS_IGNORED = frozenset({"created_at", "updated_at"})


@dataclass(frozen=True)
class AuditedModel:
    label: str  # "app_label.ModelName"
    ignore: frozenset[str] = field(default_factory=frozenset)


def _m(label: str, *ignore: str) -> AuditedModel:
    return AuditedModel(label, frozenset(ignore))


AUDITED: tuple[AuditedModel, ...] = (
    # Billing sources and allocation rules
    _m("billing.BillingSource", "last_pulled_at", "next_pull_at", "status", "consecutive_failures", "last_error"),
    _m("billing.AllocationRule"),
    # Telemetry sources (Prometheus) and where services' units come from
    _m("telemetry.TelemetrySource", "last_pull_at", "lock_until"),
    _m("telemetry.MetricMapping"),
    _m("telemetry.ServiceUnitSource"),
    # Alerting configuration (alerts themselves are data)
    _m("alerts.AlertRule", "last_error"),
    _m("alerts.Silence"),
    _m("alerts.NotificationChannel"),
    _m("alerts.TeamAlertContact"),
    # KPI and adoption targets (adoption targets are KPI targets scoped to a product), NPS campaigns
    _m("kpis.Target"),
    _m("adoption.NpsCampaign"),
    # Delivery sources and settings
    _m("delivery.DeliverySource"),
    _m("delivery.TeamDeliveryProfile"),
    _m("delivery.DoraBenchmark"),
    _m("delivery.DoraTierThreshold"),
    # The catalog (capacity pools and their target utilisation are capacity's configuration)
    _m("catalog.Team"),
    _m("catalog.Environment"),
    _m("catalog.Location"),
    _m("catalog.Service"),
    _m("catalog.CapacityPool"),
    _m("catalog.MLModel"),
    _m("catalog.ModelVersion"),
    _m("catalog.Product"),
    # Users, roles and API tokens (signing in is not a change)
    _m("accounts.User", "last_login"),
    _m("accounts.RolePermission"),
    _m("accounts.ApiToken", "last_used_at"),
    _m("auth.Group"),
    # Schedules; beat's own bookkeeping of runs is not a change
    _m("django_celery_beat.PeriodicTask", "last_run_at", "total_run_count", "date_changed"),
    _m("django_celery_beat.IntervalSchedule"),
    _m("django_celery_beat.CrontabSchedule"),
    _m("django_celery_beat.ClockedSchedule"),
    _m("django_celery_beat.SolarSchedule"),
)

# Field (or JSON key) names whose values are secrets: stored as a mask, never as the value. Fields naming an
# environment variable (``*_env_var``) hold the variable's name, not its value, and are kept.
SECRET_NAME = re.compile(
    r"password|passwd|secret|key_hash|token_hash|api[-_]?key|private[-_]?key|credential|authorization|^token$|^key$"
)
MASK = "********"


def is_secret(name: str) -> bool:
    name = name.lower()
    return not name.endswith("_env_var") and SECRET_NAME.search(name) is not None
