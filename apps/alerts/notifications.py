"""What a notification says and how it travels: payloads (Alertmanager webhook v4, Slack, email, Alertmanager's
``/api/v2/alerts``), the HMAC signature, and one delivery attempt over HTTP or SMTP.

**Signature.** Every webhook request carries

- ``X-Opsportal-Timestamp``: Unix seconds when it was sent;
- ``X-Opsportal-Signature``: ``sha256=`` + hex HMAC-SHA256, keyed with the channel's secret (read from the
  environment variable the channel names), of ``<timestamp>.<raw body>``;
- ``X-Opsportal-Delivery``: the notification's idempotency key (the same on every retry), so a receiver can
  drop a repeat if an answer was lost on the way back.

A receiver recomputes the HMAC over the timestamp, a dot and the exact body bytes, compares in constant time and
refuses timestamps older than a few minutes.
"""

import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.urls import reverse

from apps.core import netguard

from .evaluation import value_label
from .models import Alert, AlertRule, NotificationChannel

NOT_ENDED = "0001-01-01T00:00:00Z"
MAX_RESPONSE_CHARS = 2000
RETRYABLE_STATUS = frozenset({408, 425, 429})
ALERTMANAGER_HOLD_MINUTES = 15


def iso(moment: datetime | None) -> str:
    if moment is None:
        return NOT_ENDED
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def alert_url(alert: Alert) -> str:
    return settings.PORTAL_BASE_URL.rstrip("/") + reverse("alerts:detail", args=[alert.pk])


def alert_labels(alert: Alert, rule: AlertRule | None) -> dict[str, str]:
    labels = {"alertname": alert.rule_name, "severity": alert.severity}
    labels.update({k: str(v) for k, v in alert.labels.items() if v not in (None, "")})
    if rule is not None and rule.owner_team_id:
        labels["team"] = rule.owner_team.slug
    return labels


def summary(alert: Alert, rule: AlertRule | None) -> str:
    metric = rule.metric if rule else ""
    what = rule.get_metric_display().split(" (")[0] if rule else alert.rule_name
    where = alert.label_text or "all series"
    comparison = rule.get_comparison_display().split(" (")[0] if rule else "beyond"
    return (
        f"{what} of {where} is {value_label(metric, alert.value)} "
        f"(threshold: {comparison} {value_label(metric, alert.threshold)})"
    )


def alert_annotations(alert: Alert, rule: AlertRule | None) -> dict[str, str]:
    annotations = {"summary": summary(alert, rule)}
    if rule is not None and rule.description:
        annotations["description"] = rule.description
    if rule is not None and rule.runbook:
        runbook = rule.runbook.strip()
        annotations["runbook_url" if runbook.startswith(("http://", "https://")) else "runbook"] = runbook
    if alert.owner_label:
        annotations["owner"] = alert.owner_label
    return annotations


def _alert_entry(alert: Alert, rule: AlertRule | None, status: str) -> dict:
    return {
        "status": status,
        "labels": alert_labels(alert, rule),
        "annotations": alert_annotations(alert, rule),
        "startsAt": iso(alert.fired_at or alert.started_at),
        "endsAt": iso(alert.resolved_at) if status == "resolved" else NOT_ENDED,
        "generatorURL": alert_url(alert),
        "fingerprint": alert.fingerprint,
    }


def _common(dicts: list[dict]) -> dict:
    if not dicts:
        return {}
    common = dict(dicts[0])
    for d in dicts[1:]:
        common = {k: v for k, v in common.items() if d.get(k) == v}
    return common


def alertmanager_webhook(
    *, channel: NotificationChannel, rule: AlertRule, firing: list[Alert], resolved: list[Alert]
) -> dict:
    """The body Alertmanager's webhook receiver sends (version 4), one group per rule."""
    entries = [_alert_entry(a, rule, "firing") for a in firing] + [_alert_entry(a, rule, "resolved") for a in resolved]
    common_labels = _common([e["labels"] for e in entries])
    return {
        "version": "4",
        "receiver": channel.name,
        "status": "firing" if firing else "resolved",
        "groupKey": f'{{}}:{{alertname="{rule.name}", rule_id="{rule.pk}"}}',
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": rule.name},
        "commonLabels": common_labels,
        "commonAnnotations": _common([e["annotations"] for e in entries]),
        "externalURL": settings.PORTAL_BASE_URL,
        "alerts": entries,
    }


def subject(*, rule: AlertRule, firing: list[Alert], resolved: list[Alert], repeat: bool = False) -> str:
    status = f"FIRING:{len(firing)}" if firing else "RESOLVED"
    again = " (still firing)" if repeat else ""
    return f"[{status}] {rule.name} ({rule.get_severity_display().lower()}){again}"


def text_body(*, rule: AlertRule, firing: list[Alert], resolved: list[Alert]) -> str:
    lines = []
    if firing:
        lines.append("Firing:")
        for a in firing:
            lines.append(f"  - {summary(a, rule)}")
            lines.append(f"    since {a.fired_at or a.started_at:%Y-%m-%d %H:%M} UTC · {alert_url(a)}")
    if resolved:
        lines.append("Resolved:")
        for a in resolved:
            lines.append(
                f"  - {a.label_text or 'all series'}: resolved {a.resolved_at:%Y-%m-%d %H:%M} UTC ({a.resolution})"
            )
            lines.append(f"    {alert_url(a)}")
    if rule.owner_label:
        lines.append(f"Owner: {rule.owner_label}")
    if rule.runbook:
        lines += ["", "Runbook:", rule.runbook]
    return "\n".join(lines) + "\n"


def slack_body(*, rule: AlertRule, firing: list[Alert], resolved: list[Alert], repeat: bool = False) -> dict:
    title = subject(rule=rule, firing=firing, resolved=resolved, repeat=repeat)
    items = [f"• :red_circle: {summary(a, rule)} <{alert_url(a)}|details>" for a in firing]
    items += [
        f"• :large_green_circle: {a.label_text or 'all series'} resolved <{alert_url(a)}|details>" for a in resolved
    ]
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(items)[:2900]}},
    ]
    if rule.runbook:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Runbook: {rule.runbook[:2000]}"}]})
    return {"text": title, "blocks": blocks}


def alertmanager_alerts(*, rule: AlertRule, firing: list[Alert], resolved: list[Alert], at: datetime) -> list[dict]:
    """The list ``POST /api/v2/alerts`` takes. A firing alert ends in ``ALERTMANAGER_HOLD_MINUTES`` unless re-sent,
    so opsportal re-sends it every few minutes while it fires, as Prometheus does."""
    from datetime import timedelta

    out = []
    for a, status in [(a, "firing") for a in firing] + [(a, "resolved") for a in resolved]:
        ends = a.resolved_at if status == "resolved" else at + timedelta(minutes=ALERTMANAGER_HOLD_MINUTES)
        out.append(
            {
                "labels": alert_labels(a, rule),
                "annotations": alert_annotations(a, rule),
                "startsAt": iso(a.fired_at or a.started_at),
                "endsAt": iso(ends),
                "generatorURL": alert_url(a),
            }
        )
    return out


def escalation_text(alert: Alert, rule: AlertRule | None, minutes: int) -> tuple[str, str]:
    title = f"[ESCALATED] {alert.rule_name}: firing {minutes} min without acknowledgement"
    body = (
        f"{summary(alert, rule)}\n\nFiring since {alert.fired_at:%Y-%m-%d %H:%M} UTC and not acknowledged by its owner "
        f"({alert.owner_label or 'nobody'}). You are the escalation contact.\n\nAcknowledge or reassign it: "
        f"{alert_url(alert)}\n"
    )
    if rule is not None and rule.runbook:
        body += f"\nRunbook:\n{rule.runbook}\n"
    return title, body


# Signing and delivery ----------------------------------------------------------------------------------------


class MissingSecret(Exception):
    pass


def channel_secret(channel: NotificationChannel) -> bytes | None:
    """The channel's HMAC key from the worker's environment; None when the channel names no variable."""
    if not channel.secret_env_var:
        return None
    # The secret lives only in the worker's environment, never in the database.
    value = os.environ.get(channel.secret_env_var)
    if not value:
        raise MissingSecret(
            f"environment variable {channel.secret_env_var} (the signing secret of channel '{channel.name}') is not "
            "set in the worker's environment"
        )
    return value.encode()


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass
class SendResult:
    ok: bool
    status_code: int | None = None
    response: str = ""
    error: str = ""
    retryable: bool = True


def post_json(*, channel: NotificationChannel, url: str, payload, key: str, attempt: int) -> SendResult:
    import requests

    try:
        secret = channel_secret(channel)
    except MissingSecret as exc:
        return SendResult(False, error=str(exc))
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "opsportal-alerts/1",
        "X-Opsportal-Delivery": key,
        "X-Opsportal-Attempt": str(attempt),
        "X-Opsportal-Timestamp": timestamp,
    }
    if secret is not None:
        headers["X-Opsportal-Signature"] = sign(secret, timestamp, body)
    try:
        # The URL comes from an admin: the connection (and any redirect) goes through the outbound guard.
        with netguard.session() as http:
            response = http.post(
                url,
                data=body,
                headers=headers,
                timeout=(min(netguard.connect_timeout(), channel.timeout_seconds), channel.timeout_seconds),
            )
    except netguard.OutboundRefused as exc:
        return SendResult(False, error=str(exc)[:MAX_RESPONSE_CHARS], retryable=False)
    except requests.Timeout:
        return SendResult(False, error=f"no answer from {url} within {channel.timeout_seconds} s")
    except requests.RequestException as exc:
        return SendResult(False, error=f"{type(exc).__name__}: {exc}"[:MAX_RESPONSE_CHARS])
    text = response.text[:MAX_RESPONSE_CHARS]
    if 200 <= response.status_code < 300:
        return SendResult(True, response.status_code, text)
    retryable = response.status_code >= 500 or response.status_code in RETRYABLE_STATUS
    return SendResult(False, response.status_code, text, f"HTTP {response.status_code}", retryable=retryable)


def send_email(*, subject_line: str, body: str, recipients: list[str], timeout: int) -> SendResult:
    if not recipients:
        return SendResult(
            False, error="no recipient: the channel lists no address and the owner has none", retryable=False
        )
    try:
        connection = get_connection(fail_silently=False, timeout=timeout)
        sent = EmailMessage(subject_line, body, settings.DEFAULT_FROM_EMAIL, recipients, connection=connection).send()
    except Exception as exc:  # SMTP refusals and network errors: recorded with the attempt, then retried
        return SendResult(False, error=f"{type(exc).__name__}: {exc}"[:MAX_RESPONSE_CHARS])
    return SendResult(bool(sent), response=f"accepted by the mail server for {len(recipients)} recipient(s)")
