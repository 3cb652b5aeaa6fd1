"""The evaluation task over stored telemetry: pending, firing, resolved; one notification each way; silences; no data.

The task runs through Celery's machinery in-process (``task.apply``) at explicit times; telemetry is pushed
through the telemetry push service between evaluations, so the rollups the rules read are the real ones.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from apps.alerts.models import Alert, AlertRule, AuditEntry, Notification, Silence
from apps.alerts.services import notifications_due
from apps.alerts.tasks import deliver_notification_task, evaluate_rules_task

from .conftest import hour, latency, requests_and_errors
from .factories import ChannelFactory, RuleFactory

pytestmark = pytest.mark.django_db

HIGH = [600, 610, 620, 630]  # p95 by linear interpolation: rank 0.95 * 3 = 2.85 -> 620 + 0.85 * 10 = 628.5
LOW = [100, 110, 120, 130]  # p95: 120 + 0.85 * 10 = 128.5


def evaluate(at):
    return evaluate_rules_task.apply(kwargs={"at": at.isoformat()}).get()


def deliver_all(now):
    """Deliver what is due by ``now`` (or by the real clock, for changes made by people) through the task."""
    for pk in notifications_due(now=max(now, timezone.now()) + timedelta(minutes=2)):
        deliver_notification_task.apply(args=[pk])


def open_alert(rule):
    return Alert.objects.get(rule=rule, resolved_at__isnull=True)


@pytest.fixture
def rule(catalog):
    channel = ChannelFactory(name="Owners", email_to=[], email_owner=True)
    return RuleFactory(
        name="Ranker p95",
        model=catalog.model,
        environment=catalog.prod,
        threshold=Decimal("500"),
        consecutive_breaches=3,
        channels=[channel],
    )


def test_three_consecutive_breaches_fire_once_notify_once_and_resolve_once(rule):
    # Hour 0 breaches; evaluated at the start of hour 1 the window (hour 0 and the hour in progress) breaches.
    latency(hour(0), HIGH)
    assert evaluate(hour(1))["opened"] == 1
    alert = open_alert(rule)
    assert (alert.state, alert.breaches, alert.value) == ("pending", 1, pytest.approx(628.5))
    assert alert.labels == {"model": "ranker", "version": "2.1.0", "environment": "prod"}

    latency(hour(1), HIGH)
    evaluate(hour(2))
    alert.refresh_from_db()
    assert (alert.state, alert.breaches) == ("pending", 2)
    assert Notification.objects.count() == 0  # pending alerts are never notified

    latency(hour(2), HIGH)
    result = evaluate(hour(3))
    assert result["fired"] == 1 and result["notifications"] == 1
    alert.refresh_from_db()
    assert (alert.state, alert.breaches, alert.fired_at) == ("firing", 3, hour(3))
    deliver_all(hour(3))
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "[FIRING:1] Ranker p95 (critical)"
    assert mail.outbox[0].to == [rule.owner_user.email]
    assert "628 ms" in mail.outbox[0].body and "above 500 ms" in mail.outbox[0].body

    # Still breaching: no new message (the repeat interval is 4 hours).
    latency(hour(3), HIGH)
    evaluate(hour(4))
    deliver_all(hour(4))
    assert len(mail.outbox) == 1

    # Recovery: the window holds hour 4 only, which is low.
    latency(hour(4), LOW)
    assert evaluate(hour(5))["resolved"] == 1
    alert.refresh_from_db()
    assert (alert.state, alert.resolved_at, alert.resolution) == ("resolved", hour(5), "recovered")
    deliver_all(hour(5))
    assert [m.subject for m in mail.outbox] == ["[FIRING:1] Ranker p95 (critical)", "[RESOLVED] Ranker p95 (critical)"]
    assert Notification.objects.filter(kind="resolved").count() == 1

    # Staying healthy sends nothing more, and the timeline holds every step in order.
    latency(hour(5), LOW)
    evaluate(hour(6))
    deliver_all(hour(6))
    assert len(mail.outbox) == 2
    actions = list(AuditEntry.objects.filter(alert=alert).order_by("pk").values_list("action", flat=True))
    assert actions == ["pending", "firing", "notified", "resolved", "notified"]


def test_a_breach_that_clears_before_firing_resolves_quietly(rule):
    latency(hour(0), HIGH)
    evaluate(hour(1))
    latency(hour(1), LOW)
    # The window now holds hours 1 and 2: the low hour only (the hour in progress is empty).
    evaluate(hour(2))
    alert = Alert.objects.get(rule=rule)
    assert (alert.state, alert.fired_at, alert.resolution) == ("resolved", None, "cleared before firing")
    assert Notification.objects.count() == 0


def test_the_window_combines_the_previous_hours_with_the_hour_in_progress(rule):
    rule.consecutive_breaches, rule.threshold = 1, Decimal("300")
    rule.save()
    latency(hour(0), LOW)
    latency(hour(1), [900, 900])  # two samples so far in hour 1: its p95 is 900
    evaluate(hour(1) + timedelta(minutes=25))
    # The hours' p95 weighted by their samples: (128.5 * 4 + 900 * 2) / 6 = 385.67.
    assert open_alert(rule).value == pytest.approx((128.5 * 4 + 900 * 2) / 6)


def test_silenced_rule_records_the_alert_and_sends_nothing(rule, admin_user):
    Silence.objects.create(
        rule=rule,
        starts_at=hour(0),
        ends_at=hour(4) + timedelta(minutes=30),
        comment="Planned load test",
        created_by=admin_user,
    )
    for n in range(4):
        latency(hour(n), HIGH)
        evaluate(hour(n + 1))
    alert = open_alert(rule)
    assert alert.state == "firing"
    assert alert.silenced_by.comment == "Planned load test"
    assert Notification.objects.count() == 0
    deliver_all(hour(5))
    assert mail.outbox == []
    assert AuditEntry.objects.filter(alert=alert, action="silenced").count() == 1

    # Once the silence ends, the alert that still fires is notified.
    latency(hour(4), HIGH)
    evaluate(hour(5))
    deliver_all(hour(5))
    assert [m.subject for m in mail.outbox] == ["[FIRING:1] Ranker p95 (critical)"]
    assert AuditEntry.objects.filter(alert=alert, action="unsilenced").count() == 1


@pytest.mark.parametrize(
    ("no_data", "state_after_gap", "resolution"),
    [("ok", "resolved", "no data"), ("keep", "firing", ""), ("alert", "firing", "")],
)
def test_no_data_follows_the_rule_setting_for_a_firing_alert(rule, no_data, state_after_gap, resolution):
    rule.consecutive_breaches, rule.no_data = 1, no_data
    rule.save()
    latency(hour(0), HIGH)
    evaluate(hour(1))
    assert open_alert(rule).state == "firing"
    evaluate(hour(3))  # hours 2 and 3: nothing reported
    alert = Alert.objects.get(rule=rule)
    assert (alert.state, alert.resolution) == (state_after_gap, resolution)
    assert alert.value is None if no_data != "keep" else alert.value == pytest.approx(628.5)


@pytest.mark.parametrize(("no_data", "alerts"), [("ok", 0), ("keep", 0), ("alert", 1)])
def test_no_data_from_the_start_alerts_only_when_the_rule_says_so(rule, no_data, alerts):
    rule.consecutive_breaches, rule.no_data = 2, no_data
    rule.save()
    latency(hour(0), LOW)  # the series exists (reported within the last week) ...
    evaluate(hour(3))  # ... but not in the window: hours 2 and 3
    evaluate(hour(4))
    assert Alert.objects.filter(rule=rule).count() == alerts
    if alerts:
        alert = Alert.objects.get(rule=rule)
        assert (alert.state, alert.breaches, alert.value) == ("firing", 2, None)


def test_a_scope_with_no_series_at_all_is_one_no_data_instance(catalog):
    rule = RuleFactory(model=catalog.model, environment=catalog.uat, consecutive_breaches=1, no_data="alert")
    latency(hour(0), HIGH)  # prod only
    evaluate(hour(1))
    alert = Alert.objects.get(rule=rule)
    assert alert.labels == {"model": "ranker", "environment": "uat"}
    assert alert.state == "firing" and alert.value is None


def test_hysteresis_keeps_firing_until_the_recovery_threshold(rule):
    rule.consecutive_breaches, rule.recovery_threshold = 1, Decimal("300")
    rule.save()
    latency(hour(0), HIGH)
    evaluate(hour(1))
    latency(hour(1), [400, 400, 400, 400])  # below 500 but above the recovery threshold 300
    evaluate(hour(2))
    assert open_alert(rule).state == "firing"
    latency(hour(2), LOW)
    evaluate(hour(3))
    assert Alert.objects.get(rule=rule).state == "resolved"


def test_one_alert_per_instance_by_group_by(catalog):
    rule = RuleFactory(model=catalog.model, consecutive_breaches=1)
    latency(hour(0), HIGH, version="2.1.0")
    latency(hour(0), HIGH, version="2.2.0")
    latency(hour(0), LOW, version="2.1.0", environment="uat")
    evaluate(hour(1))
    assert sorted(a["version"] + "/" + a["environment"] for a in Alert.objects.values_list("labels", flat=True)) == [
        "2.1.0/prod",
        "2.2.0/prod",
    ]
    rule.group_by = ["model"]
    rule.save()
    latency(hour(1), HIGH, version="2.1.0")
    evaluate(hour(2))
    # Re-grouped: the two per-version alerts end (out of scope) and one model-wide alert opens.
    assert Alert.objects.filter(resolved_at__isnull=True).get().labels == {"model": "ranker"}
    assert Alert.objects.filter(resolution__startswith="no longer in the rule's scope").count() == 2


def test_error_rate_and_throughput_are_computed_from_the_counters(catalog):
    errors = RuleFactory(metric="error_rate", model=catalog.model, threshold=Decimal("0.02"), consecutive_breaches=1)
    slow = RuleFactory(
        metric="throughput", model=catalog.model, comparison="lt", threshold=Decimal("2"), consecutive_breaches=1
    )
    requests_and_errors(hour(0), 6000, 150)
    requests_and_errors(hour(1), 1200, 6)
    evaluate(hour(1) + timedelta(minutes=30))
    # Error rate: (150 + 6) / (6000 + 1200) = 2.1667 %; throughput: 7200 requests / (3600 + 1800) s = 1.333 /s.
    assert Alert.objects.get(rule=errors).value == pytest.approx(156 / 7200)
    assert Alert.objects.get(rule=slow).value == pytest.approx(7200 / 5400)


def test_a_failing_kpi_is_recorded_on_the_rule_not_a_crash(catalog):
    rule = RuleFactory(metric="kpi", kpi_key="no_such_kpi", model=None, consecutive_breaches=1)
    healthy = RuleFactory(model=catalog.model, consecutive_breaches=1)
    latency(hour(0), HIGH)
    result = evaluate(hour(1))
    assert result["errors"] == 1
    rule.refresh_from_db()
    assert rule.last_error == "there is no headline KPI 'no_such_kpi'"
    assert Alert.objects.get(rule=healthy).state == "firing"


def test_disabling_a_rule_resolves_its_alerts_and_says_so(rule, admin_user):
    from apps.alerts.services import rule_save

    rule.consecutive_breaches = 1
    rule.save()
    latency(hour(0), HIGH)
    evaluate(hour(1))
    deliver_all(hour(1))
    rule.enabled = False
    rule_save(rule=rule, channels=list(rule.channels.all()), actor=admin_user)
    alert = Alert.objects.get(rule=rule)
    assert (alert.state, alert.resolution) == ("resolved", "rule disabled")
    deliver_all(hour(2))
    assert [m.subject for m in mail.outbox] == ["[FIRING:1] Ranker p95 (critical)", "[RESOLVED] Ranker p95 (critical)"]
    assert AlertRule.objects.get(pk=rule.pk).enabled is False
