"""Delivery against real receivers on 127.0.0.1: a webhook sink (payload, HMAC signature, retries with backoff, never
twice), an SMTP server (aiosmtpd) and, for forwarding, Debian's Alertmanager."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.alerts.evaluation import floor_hour
from apps.alerts.models import AuditEntry, Notification, NotificationAttempt
from apps.alerts.services import evaluation_cycle, notification_deliver
from apps.alerts.tasks import deliver_notification_task

from .conftest import hour, latency
from .factories import ChannelFactory, RuleFactory
from .servers import Alertmanager, SmtpSink, WebhookSink, free_port

pytestmark = pytest.mark.django_db

SECRET_VAR = "OPSPORTAL_TEST_ALERTS_WEBHOOK_SECRET"
SECRET = "s3cret-for-the-test-receiver"
HIGH = [600, 610, 620, 630]
LOW = [100, 110, 120, 130]


@pytest.fixture
def sink():
    server = WebhookSink()
    yield server
    server.close()


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv(SECRET_VAR, SECRET)
    return SECRET.encode()


def fire(catalog, channel, **rule_fields):
    rule = RuleFactory(
        name="Ranker p95", model=catalog.model, consecutive_breaches=1, channels=[channel], **rule_fields
    )
    latency(hour(0), HIGH)
    result = evaluation_cycle(at=hour(1))
    assert len(result.notifications) == 1
    return rule, Notification.objects.get(pk=result.notifications[0])


def test_webhook_payload_is_alertmanager_compatible_and_verifies(catalog, sink, secret):
    channel = ChannelFactory(name="On-call", kind="webhook", url=sink.url, secret_env_var=SECRET_VAR, email_to=[])
    _, notification = fire(catalog, channel, runbook="https://runbooks.example/ranker")
    outcome = deliver_notification_task.apply(args=[notification.pk]).get()
    assert outcome == "delivered"
    assert len(sink.requests) == 1
    request = sink.requests[0]
    headers, body = request["headers"], request["body"]
    # The receiver's check: HMAC-SHA256 over "<timestamp>.<raw body>" with the shared secret.
    expected = (
        "sha256="
        + hmac.new(secret, headers["X-Opsportal-Timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
    )
    assert hmac.compare_digest(headers["X-Opsportal-Signature"], expected)
    assert headers["X-Opsportal-Delivery"] == notification.key
    payload = json.loads(body)
    assert payload["version"] == "4" and payload["status"] == "firing" and payload["receiver"] == "On-call"
    assert payload["groupLabels"] == {"alertname": "Ranker p95"}
    [alert] = payload["alerts"]
    assert alert["status"] == "firing" and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["startsAt"] == "2026-11-02T10:00:00.000Z"
    assert alert["labels"] == {
        "alertname": "Ranker p95",
        "severity": "critical",
        "model": "ranker",
        "version": "2.1.0",
        "environment": "prod",
    }
    assert alert["annotations"]["summary"] == (
        "Latency p95 of ranker · 2.1.0 · prod is 628 ms (threshold: above 500 ms)"
    )
    assert alert["annotations"]["runbook_url"] == "https://runbooks.example/ranker"
    assert payload["commonLabels"] == alert["labels"]
    # A tampered body does not verify.
    forged = (
        "sha256="
        + hmac.new(secret, headers["X-Opsportal-Timestamp"].encode() + b"." + body + b" ", hashlib.sha256).hexdigest()
    )
    assert forged != headers["X-Opsportal-Signature"]

    # The recovery is announced as resolved, signed the same way.
    latency(hour(1), LOW)
    result = evaluation_cycle(at=hour(2))
    notification_deliver(notification_id=result.notifications[0])
    resolved = json.loads(sink.requests[1]["body"])
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["endsAt"] == "2026-11-02T11:00:00.000Z"


def test_receiver_down_is_retried_with_backoff_and_delivered_once_when_back(catalog, secret):
    port = free_port()  # nothing listens here yet
    channel = ChannelFactory(
        kind="webhook", url=f"http://127.0.0.1:{port}/hook", secret_env_var=SECRET_VAR, email_to=[], backoff_seconds=30
    )
    _, notification = fire(catalog, channel)
    t0 = timezone.now()
    first = notification_deliver(notification_id=notification.pk, now=t0)
    assert first.status == "retrying" and first.retry_in == 30
    notification.refresh_from_db()
    assert notification.next_attempt_at == t0 + timedelta(seconds=30)
    assert "Connection" in notification.last_error
    # Not due yet: nothing is sent early.
    assert notification_deliver(notification_id=notification.pk, now=t0 + timedelta(seconds=10)) is None

    # Second failure doubles the wait.
    second = notification_deliver(notification_id=notification.pk, now=t0 + timedelta(seconds=30))
    assert second.retry_in == 60

    sink = WebhookSink(port=port)
    try:
        third = notification_deliver(notification_id=notification.pk, now=t0 + timedelta(seconds=90))
        assert third.status == "delivered"
        # Delivered is final: later retries or a duplicate task send nothing.
        assert notification_deliver(notification_id=notification.pk, now=t0 + timedelta(hours=2)) is None
        assert deliver_notification_task.apply(args=[notification.pk]).get().startswith("nothing to do")
        assert len(sink.requests) == 1
        assert sink.requests[0]["headers"]["X-Opsportal-Attempt"] == "3"
    finally:
        sink.close()
    attempts = list(NotificationAttempt.objects.filter(notification=notification).order_by("number"))
    assert [(a.number, a.ok, a.status_code) for a in attempts] == [(1, False, None), (2, False, None), (3, True, 200)]
    assert attempts[2].response == '{"ok": true}'


def test_a_notification_being_sent_is_not_sent_again_until_its_lock_expires(catalog, sink, secret):
    channel = ChannelFactory(kind="webhook", url=sink.url, secret_env_var=SECRET_VAR, email_to=[], timeout_seconds=5)
    _, notification = fire(catalog, channel)
    now = timezone.now()
    Notification.objects.filter(pk=notification.pk).update(status="sending", locked_until=now + timedelta(seconds=65))
    assert notification_deliver(notification_id=notification.pk, now=now) is None
    assert sink.requests == []
    # The sender died: once its lock expires, another worker takes over.
    assert notification_deliver(notification_id=notification.pk, now=now + timedelta(seconds=66)).status == "delivered"
    assert len(sink.requests) == 1


def test_server_errors_are_retried_client_errors_are_not_and_attempts_run_out(catalog, secret):
    sink = WebhookSink(status=503)
    try:
        channel = ChannelFactory(kind="webhook", url=sink.url, secret_env_var=SECRET_VAR, email_to=[], max_attempts=2)
        _, notification = fire(catalog, channel)
        now = timezone.now()
        assert notification_deliver(notification_id=notification.pk, now=now).status == "retrying"
        failed = notification_deliver(notification_id=notification.pk, now=now + timedelta(minutes=1))
        assert failed.status == "failed" and failed.notification.last_error == "HTTP 503"
        assert AuditEntry.objects.filter(action="notify_failed").count() == 1

        sink.status = 400
        rule2 = RuleFactory(name="Other", model=catalog.model, consecutive_breaches=1, channels=[channel])
        latency(hour(1), HIGH)
        evaluation_cycle(at=hour(2))
        other = Notification.objects.get(rule=rule2)
        assert notification_deliver(notification_id=other.pk).status == "failed"  # 4xx: a retry would not help
        assert other.attempt_log.get().status_code == 400
    finally:
        sink.close()


def test_a_missing_secret_names_the_environment_variable(catalog, sink, monkeypatch):
    monkeypatch.delenv(SECRET_VAR, raising=False)
    channel = ChannelFactory(kind="webhook", url=sink.url, secret_env_var=SECRET_VAR, email_to=[])
    _, notification = fire(catalog, channel)
    notification_deliver(notification_id=notification.pk)
    notification.refresh_from_db()
    assert SECRET_VAR in notification.last_error and "is not set" in notification.last_error
    assert sink.requests == []


def test_slack_payload(catalog, sink):
    channel = ChannelFactory(kind="slack", url=sink.url, email_to=[])
    _, notification = fire(catalog, channel)
    notification_deliver(notification_id=notification.pk)
    payload = json.loads(sink.requests[0]["body"])
    assert payload["text"] == "[FIRING:1] Ranker p95 (critical)"
    assert payload["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": payload["text"]}}
    assert "Latency p95 of ranker · 2.1.0 · prod is 628 ms" in payload["blocks"][1]["text"]["text"]
    assert "X-Opsportal-Signature" not in sink.requests[0]["headers"]  # no secret named: unsigned


def test_email_goes_through_a_real_smtp_server_and_is_retried_when_it_is_down(catalog, settings):
    smtp = SmtpSink()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    try:
        channel = ChannelFactory(kind="email", email_to=["ops@example.com"], email_owner=True)
        rule, notification = fire(catalog, channel)
        assert notification.recipients == ["ops@example.com", rule.owner_user.email]
        assert notification_deliver(notification_id=notification.pk).status == "delivered"
        [message] = smtp.messages
        assert sorted(message["to"]) == sorted(["ops@example.com", rule.owner_user.email])
        assert "Subject: [FIRING:1] Ranker p95 (critical)" in message["data"]
        assert "628 ms" in message["data"]
    finally:
        smtp.close()
    # The server is gone: the resolved message waits for a retry.
    latency(hour(1), LOW)
    result = evaluation_cycle(at=hour(2))
    outcome = notification_deliver(notification_id=result.notifications[0])
    assert outcome.status == "retrying"
    assert "Connection" in outcome.notification.last_error or "refused" in outcome.notification.last_error


def test_escalation_emails_the_second_contact_when_nobody_acknowledges(catalog, admin_user):
    from django.core import mail

    from apps.alerts.services import alert_acknowledge

    contact = admin_user
    rule = RuleFactory(model=catalog.model, consecutive_breaches=1, escalation_user=contact, escalate_after_minutes=30)
    latency(hour(0), HIGH)
    evaluation_cycle(at=hour(1))
    assert evaluation_cycle(at=hour(1) + timedelta(minutes=29)).notifications == []
    [escalation] = evaluation_cycle(at=hour(1) + timedelta(minutes=30)).notifications
    assert evaluation_cycle(at=hour(1) + timedelta(minutes=45)).notifications == []  # once per alert
    notification_deliver(notification_id=escalation)
    assert mail.outbox[0].to == [contact.email]
    assert mail.outbox[0].subject == f"[ESCALATED] {rule.name}: firing 30 min without acknowledgement"

    # An acknowledged alert is not escalated.
    other = RuleFactory(model=catalog.model, consecutive_breaches=1, escalation_user=contact, escalate_after_minutes=30)
    latency(hour(1), HIGH)
    evaluation_cycle(at=hour(2))
    alert_acknowledge(alert=other.alerts.get(), actor=other.owner_user, note="on it")
    assert evaluation_cycle(at=hour(3)).notifications == []


def test_flapping_sends_at_most_one_message_per_group_interval(catalog):
    channel = ChannelFactory()
    rule = RuleFactory(model=catalog.model, consecutive_breaches=1, channels=[channel], group_interval_minutes=150)
    sent = []
    for n, values in enumerate([HIGH, LOW, HIGH, LOW, LOW]):
        latency(hour(n), values)
        sent.append([Notification.objects.get(pk=pk).kind for pk in evaluation_cycle(at=hour(n + 1)).notifications])
    # Fired at hour 1; resolved (2), fired again (3): within 150 minutes of the first message, and the group is back
    # where it was, so nothing to say; resolved at 4 (180 minutes later): one resolved message.
    assert sent == [["firing"], [], [], ["resolved"], []]
    assert rule.alerts.count() == 2


def test_a_still_firing_alert_is_repeated_after_the_repeat_interval_unless_acknowledged(catalog):
    from apps.alerts.services import alert_acknowledge

    channel = ChannelFactory()
    rule = RuleFactory(model=catalog.model, consecutive_breaches=1, channels=[channel], repeat_interval_minutes=120)
    kinds = []
    for n in range(4):
        latency(hour(n), HIGH)
        kinds.append([Notification.objects.get(pk=pk).kind for pk in evaluation_cycle(at=hour(n + 1)).notifications])
    assert kinds == [["firing"], [], ["repeat"], []]
    alert_acknowledge(alert=rule.alerts.get(), actor=rule.owner_user)
    for n in range(4, 7):
        latency(hour(n), HIGH)
        assert evaluation_cycle(at=hour(n + 1)).notifications == []


def test_firing_alerts_are_forwarded_to_a_real_alertmanager(catalog, tmp_path):
    from apps.telemetry.services import telemetry_push

    manager = Alertmanager(tmp_path)
    try:
        channel = ChannelFactory(name="Central Alertmanager", kind="alertmanager", url=manager.url, email_to=[])
        RuleFactory(name="Ranker p95", model=catalog.model, consecutive_breaches=1, channels=[channel])
        # Alertmanager judges firing and resolved by the wall clock, so this test evaluates at recent times.
        now = timezone.now()
        fired_at, resolved_at = now - timedelta(minutes=10), now - timedelta(minutes=5)
        latency(floor_hour(fired_at) - timedelta(hours=1), HIGH)
        [pk] = evaluation_cycle(at=fired_at).notifications
        assert notification_deliver(notification_id=pk).status == "delivered"
        [alert] = manager.alerts()
        assert alert["labels"]["alertname"] == "Ranker p95"
        assert alert["labels"]["model"] == "ranker" and alert["labels"]["severity"] == "critical"
        assert alert["status"]["state"] == "active"
        assert alert["annotations"]["summary"].startswith("Latency p95 of ranker · 2.1.0 · prod is 628 ms")

        # Twenty fast samples after the first evaluation bring the window's p95 down: the alert resolves and
        # Alertmanager, told its end time, no longer lists it as active.
        telemetry_push(
            points=[
                {
                    "metric": "latency_ms",
                    "model": "ranker",
                    "version": "2.1.0",
                    "environment": "prod",
                    "timestamp": (fired_at + timedelta(seconds=1 + i)).isoformat(),
                    "value": 120,
                }
                for i in range(20)
            ],
            now=now,
        )
        [pk] = evaluation_cycle(at=resolved_at).notifications
        assert notification_deliver(notification_id=pk).status == "delivered"
        assert manager.alerts() == []
    finally:
        manager.close()
