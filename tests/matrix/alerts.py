"""Routes of the alerts app. Every role reads alerts, rules, silences, the audit trail and model health; only admins
change rules, silences and channels (and see channels, whose URLs may be secrets); an alert's owner or an admin
acknowledges and reassigns it. ``alerts:list`` is listed with the other KPI pages in core.py."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from apps.accounts.roles import Role
from apps.alerts.models import Alert, AlertRule, NotificationChannel, Silence
from tests.factories import EnvironmentFactory, UserFactory
from tests.telemetry.factories import ModelVersionFactory

from . import (
    ADM,
    ADMIN_PAGE,
    ANON,
    API_DELETE_ADMIN,
    API_READ,
    API_READ_ADMIN,
    API_UPDATE_ADMIN,
    API_WRITE_ADMIN,
    EXE,
    PAGE,
    PM,
    Route,
)

ADMIN_POST = {ANON: 302, EXE: 403, PM: 403, ADM: 302}  # done, then redirected
ADMIN_FORM_POST = {ANON: 302, EXE: 403, PM: 403, ADM: 400}  # allowed, then the empty form is refused
OWNER_API_POST = {ANON: 401, EXE: 403, PM: 403, ADM: 200}  # the matrix PM does not own the alert


def setup(users) -> None:
    env = EnvironmentFactory(slug="matrix-alerts-env", name="Matrix alerts env")
    version = ModelVersionFactory(model__slug="matrix-alerts-model", version="1.0")
    owner = UserFactory(username="matrix-alert-owner", role=Role.PRODUCT_MANAGER)
    channel = NotificationChannel.objects.create(name="matrix-channel", kind="email", email_to=["m@example.com"])
    rule = AlertRule.objects.create(
        name="matrix-rule",
        metric="latency_p95",
        model=version.model,
        environment=env,
        threshold=Decimal("500"),
        group_by=["model", "version", "environment"],
        owner_user=owner,
    )
    rule.channels.set([channel])
    now = timezone.now()
    Alert.objects.create(
        rule=rule,
        rule_name=rule.name,
        fingerprint="matrix0000000001",
        labels={"model": "matrix-alerts-model"},
        model=version.model,
        state="firing",
        severity="warning",
        value=612.0,
        threshold=Decimal("500"),
        breaches=3,
        started_at=now,
        fired_at=now,
        last_evaluated_at=now,
        owner_user=owner,
    )
    Silence.objects.create(rule=rule, starts_at=now, ends_at=now + timedelta(hours=2), comment="matrix")


def _alert() -> dict:
    return {"pk": Alert.objects.get(fingerprint="matrix0000000001").pk}


def _rule() -> dict:
    return {"pk": AlertRule.objects.get(name="matrix-rule").pk}


def _silence() -> dict:
    return {"pk": Silence.objects.get(comment="matrix").pk}


def _channel() -> dict:
    return {"pk": NotificationChannel.objects.get(name="matrix-channel").pk}


MATRIX = [
    Route("alerts:detail", "get", PAGE, kwargs=_alert),
    Route("alerts:acknowledge", "post", ADMIN_POST, kwargs=_alert),
    Route("alerts:assign", "post", ADMIN_FORM_POST, kwargs=_alert),
    Route("alerts:rules", "get", PAGE),
    Route("alerts:rule-create", "get", ADMIN_PAGE),
    Route("alerts:rule-create", "post", ADMIN_FORM_POST),
    Route("alerts:rule-preview", "post", {ANON: 302, EXE: 403, PM: 403, ADM: 200}),  # 200: what to fix
    Route("alerts:rule-detail", "get", PAGE, kwargs=_rule),
    Route("alerts:rule-edit", "get", ADMIN_PAGE, kwargs=_rule),
    Route("alerts:rule-delete", "post", ADMIN_POST, kwargs=_rule),
    Route("alerts:silences", "get", PAGE),
    Route("alerts:silence-create", "get", ADMIN_PAGE),
    Route("alerts:silence-create", "post", ADMIN_FORM_POST),
    Route("alerts:silence-edit", "get", ADMIN_PAGE, kwargs=_silence),
    Route("alerts:silence-expire", "post", ADMIN_POST, kwargs=_silence),
    Route("alerts:silence-delete", "post", ADMIN_POST, kwargs=_silence),
    Route("alerts:channels", "get", ADMIN_PAGE),
    Route("alerts:channel-create", "get", ADMIN_PAGE),
    Route("alerts:channel-edit", "get", ADMIN_PAGE, kwargs=_channel),
    Route("alerts:channel-delete", "post", ADMIN_POST, kwargs=_channel),
    Route("alerts:channel-test", "post", ADMIN_POST, kwargs=_channel),
    Route("alerts:audit", "get", PAGE),
    Route("alerts:model-health", "get", PAGE),
    Route("alert-list", "get", API_READ),
    Route("alert-detail", "get", API_READ, kwargs=_alert),
    Route("alert-acknowledge", "post", OWNER_API_POST, kwargs=_alert, json=True),
    Route("alert-assign", "post", {ANON: 401, EXE: 403, PM: 403, ADM: 400}, kwargs=_alert, json=True),
    Route("alert-rule-list", "get", API_READ),
    Route("alert-rule-list", "post", API_WRITE_ADMIN, json=True),
    Route("alert-rule-preview", "post", API_WRITE_ADMIN, json=True),
    Route("alert-rule-detail", "get", API_READ, kwargs=_rule),
    Route("alert-rule-detail", "patch", API_UPDATE_ADMIN, kwargs=_rule, json=True),
    Route("alert-rule-detail", "delete", API_DELETE_ADMIN, kwargs=_rule),
    Route("alert-silence-list", "get", API_READ),
    Route("alert-silence-list", "post", API_WRITE_ADMIN, json=True),
    Route("alert-silence-detail", "get", API_READ, kwargs=_silence),
    Route("alert-silence-detail", "patch", API_UPDATE_ADMIN, kwargs=_silence, json=True),
    Route("alert-silence-detail", "delete", API_DELETE_ADMIN, kwargs=_silence),
    Route("alert-channel-list", "get", API_READ_ADMIN),
    Route("alert-channel-list", "post", API_WRITE_ADMIN, json=True),
    Route("alert-channel-detail", "get", API_READ_ADMIN, kwargs=_channel),
    Route("alert-channel-detail", "patch", API_UPDATE_ADMIN, kwargs=_channel, json=True),
    Route("alert-channel-detail", "delete", API_DELETE_ADMIN, kwargs=_channel),
    Route("alert-audit", "get", API_READ),
    Route("alert-model-health", "get", API_READ),
    Route("alert-distributions", "post", API_WRITE_ADMIN, json=True),
]
