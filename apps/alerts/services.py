"""Writes of the alerts app: rules, silences and channels (each change audited), alert actions, the evaluation
cycle, notification grouping and escalation, and delivery with retries.

The evaluation cycle is idempotent: it claims its minute slot with a conditional update of the evaluator row
(``last_slot < slot``), so a second worker or a retried task for the same minute changes nothing; the row lock it
takes also keeps two cycles from interleaving. Within a cycle, the database still refuses a second open alert for
one rule instance and a second notification with the same key.
"""

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.catalog.models import CapacityPool, Environment, Location, MLModel, ModelVersion, Service
from apps.core.exceptions import ApplicationError

from . import notifications as notify
from .evaluation import EvaluationError, Outcome, Snapshot, advance, outcome
from .models import (
    SCOPE_FIELDS,
    Alert,
    AlertRule,
    AuditEntry,
    EvaluatorState,
    Notification,
    NotificationAttempt,
    NotificationChannel,
    NotificationGroup,
    Silence,
)
from .storage import insert_rows, update_rows
from .validation import channel_errors, normalise_rule, rule_errors, silence_errors

logger = logging.getLogger(__name__)

EVALUATOR = "evaluator"
MAX_BACKOFF_SECONDS = 3600
ALERTMANAGER_RESEND = timedelta(minutes=5)
A = Alert.State


# Audit trail -------------------------------------------------------------------------------------------------


def _actor_name(actor) -> str:
    if actor is None:
        return EVALUATOR
    return actor.get_full_name() or actor.username


def _audit(
    *,
    actor,
    target_type: str,
    target_id: int,
    target_repr: str,
    action: str,
    before: dict | None = None,
    after: dict | None = None,
    note: str = "",
    alert: Alert | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    return AuditEntry(
        at=at or timezone.now(),
        actor=actor,
        actor_name=_actor_name(actor),
        target_type=target_type,
        target_id=target_id,
        target_repr=str(target_repr)[:250],
        action=action,
        before=before,
        after=after,
        note=note,
        alert=alert,
    )


def _slug(obj, attr: str = "slug"):
    return getattr(obj, attr) if obj is not None else None


def _text(value) -> str | None:
    return None if value is None else format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)


def rule_snapshot(rule: AlertRule, channels: list[NotificationChannel] | None = None) -> dict:
    """The rule as plain JSON, by slugs and names, for the audit trail's before/after."""
    if channels is None:
        channels = list(rule.channels.all()) if rule.pk else []
    return {
        "name": rule.name,
        "description": rule.description,
        "enabled": rule.enabled,
        "metric": rule.metric,
        "kpi_key": rule.kpi_key,
        "feature": rule.feature,
        "drift_method": rule.drift_method,
        "drift_reference": rule.drift_reference,
        "drift_reference_days": rule.drift_reference_days,
        "model": _slug(rule.model),
        "version": rule.version.version if rule.version_id else None,
        "environment": _slug(rule.environment),
        "service": _slug(rule.service),
        "pool": _slug(rule.pool),
        "location": _slug(rule.location, "code"),
        "group_by": list(rule.group_by or []),
        "comparison": rule.comparison,
        "threshold": _text(rule.threshold),
        "recovery_threshold": _text(rule.recovery_threshold),
        "window_minutes": rule.window_minutes,
        "consecutive_breaches": rule.consecutive_breaches,
        "no_data": rule.no_data,
        "severity": rule.severity,
        "owner_user": _slug(rule.owner_user, "username"),
        "owner_team": _slug(rule.owner_team),
        "escalation_user": _slug(rule.escalation_user, "username"),
        "escalate_after_minutes": rule.escalate_after_minutes,
        "channels": sorted(c.name for c in channels),
        "runbook": rule.runbook,
        "group_interval_minutes": rule.group_interval_minutes,
        "repeat_interval_minutes": rule.repeat_interval_minutes,
    }


def silence_snapshot(silence: Silence) -> dict:
    return {
        "rule": silence.rule.name if silence.rule_id else None,
        "model": _slug(silence.model),
        "version": silence.version.version if silence.version_id else None,
        "environment": _slug(silence.environment),
        "service": _slug(silence.service),
        "pool": _slug(silence.pool),
        "location": _slug(silence.location, "code"),
        "starts_at": silence.starts_at.isoformat() if silence.starts_at else None,
        "ends_at": silence.ends_at.isoformat() if silence.ends_at else None,
        "comment": silence.comment,
    }


def channel_snapshot(channel: NotificationChannel) -> dict:
    return {
        "name": channel.name,
        "kind": channel.kind,
        "enabled": channel.enabled,
        "email_to": list(channel.email_to or []),
        "email_owner": channel.email_owner,
        "url": channel.url,
        "secret_env_var": channel.secret_env_var,
        "send_resolved": channel.send_resolved,
        "timeout_seconds": channel.timeout_seconds,
        "max_attempts": channel.max_attempts,
        "backoff_seconds": channel.backoff_seconds,
    }


def _alert_snapshot(alert: Alert) -> dict:
    return {
        "state": alert.state,
        "value": alert.value,
        "breaches": alert.breaches,
        "owner_user": _slug(alert.owner_user, "username") if alert.owner_user_id else None,
        "owner_team": _slug(alert.owner_team) if alert.owner_team_id else None,
        "acknowledged": alert.acknowledged_at is not None,
        "silenced_by": alert.silenced_by_id,
    }


# Rules -------------------------------------------------------------------------------------------------------


def _raise(errors: dict[str, list[str]]) -> None:
    if errors:
        raise ValidationError(errors)


def _resolve_open_alerts(*, rule: AlertRule, actor, resolution: str, at: datetime) -> list[Alert]:
    alerts = list(Alert.objects.filter(rule=rule, resolved_at__isnull=True))
    entries = []
    for alert in alerts:
        before = alert.state
        Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
            state=A.RESOLVED, resolved_at=at, resolution=resolution, updated_at=at
        )
        alert.state, alert.resolved_at, alert.resolution = A.RESOLVED, at, resolution
        entries.append(
            _audit(
                actor=actor,
                target_type=AuditEntry.Target.ALERT,
                target_id=alert.pk,
                target_repr=str(alert),
                action="resolved",
                before={"state": before},
                after={"state": A.RESOLVED},
                note=resolution,
                alert=alert,
                at=at,
            )
        )
    AuditEntry.objects.bulk_create(entries)
    return alerts


@transaction.atomic
def rule_save(*, rule: AlertRule, channels: list[NotificationChannel], actor) -> AlertRule:
    """Create or change a rule (admins only: the views and the API check), recording before and after.

    Disabling a rule resolves its open alerts (and tells the channels that had announced them).
    """
    normalise_rule(rule)
    _raise(rule_errors(rule, channels))
    old = AlertRule.objects.filter(pk=rule.pk).first() if rule.pk else None
    before = rule_snapshot(old) if old else None
    if old is None:
        rule.created_by = actor
    rule.full_clean(exclude=["channels"])
    rule.save()
    rule.channels.set(channels)
    after = rule_snapshot(rule, channels)
    if before != after:
        _audit(
            actor=actor,
            target_type=AuditEntry.Target.RULE,
            target_id=rule.pk,
            target_repr=rule.name,
            action="created" if old is None else "updated",
            before=before,
            after=after,
        ).save()
    if old is not None and old.enabled and not rule.enabled:
        now = timezone.now()
        _resolve_open_alerts(rule=rule, actor=actor, resolution="rule disabled", at=now)
        _flush_rules([rule.pk], at=now, force=True)
    return rule


@transaction.atomic
def rule_delete(*, rule: AlertRule, actor) -> None:
    """Delete a rule; its alerts stay in the history (with the rule's name), resolved if they were open."""
    now = timezone.now()
    before = rule_snapshot(rule)
    _resolve_open_alerts(rule=rule, actor=actor, resolution="rule deleted", at=now)
    _flush_rules([rule.pk], at=now, force=True)
    _audit(
        actor=actor,
        target_type=AuditEntry.Target.RULE,
        target_id=rule.pk,
        target_repr=rule.name,
        action="deleted",
        before=before,
    ).save()
    rule.delete()


# Silences and channels ---------------------------------------------------------------------------------------


@transaction.atomic
def silence_save(*, silence: Silence, actor) -> Silence:
    _raise(silence_errors(silence))
    old = Silence.objects.filter(pk=silence.pk).first() if silence.pk else None
    if old is None:
        silence.created_by = actor
    silence.full_clean()
    silence.save()
    _audit(
        actor=actor,
        target_type=AuditEntry.Target.SILENCE,
        target_id=silence.pk,
        target_repr=str(silence),
        action="created" if old is None else "updated",
        before=silence_snapshot(old) if old else None,
        after=silence_snapshot(silence),
    ).save()
    return silence


@transaction.atomic
def silence_expire(*, silence: Silence, actor, at: datetime | None = None) -> Silence:
    """End a silence now; alerts it muted are notified at the next evaluation if still firing."""
    at = at or timezone.now()
    if silence.ends_at <= at:
        raise ApplicationError(f"Silence {silence.pk} already ended at {silence.ends_at:%Y-%m-%d %H:%M} UTC.")
    before = silence_snapshot(silence)
    if silence.starts_at >= at:
        silence.starts_at = at - timedelta(seconds=1)
    silence.ends_at = at
    silence.save(update_fields=["starts_at", "ends_at", "updated_at"])
    _audit(
        actor=actor,
        target_type=AuditEntry.Target.SILENCE,
        target_id=silence.pk,
        target_repr=str(silence),
        action="expired",
        before=before,
        after=silence_snapshot(silence),
    ).save()
    return silence


@transaction.atomic
def silence_delete(*, silence: Silence, actor) -> None:
    _audit(
        actor=actor,
        target_type=AuditEntry.Target.SILENCE,
        target_id=silence.pk,
        target_repr=str(silence),
        action="deleted",
        before=silence_snapshot(silence),
    ).save()
    silence.delete()


@transaction.atomic
def channel_save(*, channel: NotificationChannel, actor) -> NotificationChannel:
    _raise(channel_errors(channel))
    old = NotificationChannel.objects.filter(pk=channel.pk).first() if channel.pk else None
    channel.full_clean()
    channel.save()
    before, after = (channel_snapshot(old) if old else None), channel_snapshot(channel)
    if before != after:
        _audit(
            actor=actor,
            target_type=AuditEntry.Target.CHANNEL,
            target_id=channel.pk,
            target_repr=channel.name,
            action="created" if old is None else "updated",
            before=before,
            after=after,
        ).save()
    return channel


@transaction.atomic
def channel_delete(*, channel: NotificationChannel, actor) -> None:
    _audit(
        actor=actor,
        target_type=AuditEntry.Target.CHANNEL,
        target_id=channel.pk,
        target_repr=channel.name,
        action="deleted",
        before=channel_snapshot(channel),
    ).save()
    channel.delete()


# Alert actions -----------------------------------------------------------------------------------------------


@transaction.atomic
def alert_acknowledge(*, alert: Alert, actor, note: str = "", at: datetime | None = None) -> Alert:
    """Acknowledge an open alert: it stays open, but escalation and repeat notifications stop."""
    at = at or timezone.now()
    note = (note or "").strip()
    claimed = Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True, acknowledged_at__isnull=True).update(
        acknowledged_at=at, acknowledged_by=actor, ack_note=note, updated_at=at
    )
    if not claimed:
        alert.refresh_from_db()
        if alert.resolved_at is not None:
            raise ApplicationError(
                f"Alert {alert.pk} resolved at {alert.resolved_at:%Y-%m-%d %H:%M} UTC: nothing to acknowledge."
            )
        who = alert.acknowledged_by.username if alert.acknowledged_by_id else "someone"
        raise ApplicationError(
            f"Alert {alert.pk} was already acknowledged by {who} at {alert.acknowledged_at:%H:%M} UTC."
        )
    alert.refresh_from_db()
    _audit(
        actor=actor,
        target_type=AuditEntry.Target.ALERT,
        target_id=alert.pk,
        target_repr=str(alert),
        action="acknowledged",
        before={"acknowledged": False},
        after={"acknowledged": True},
        note=note,
        alert=alert,
        at=at,
    ).save()
    return alert


@transaction.atomic
def alert_assign(*, alert: Alert, actor, user=None, team=None, note: str = "") -> Alert:
    """Give an alert to another owner (a user or a team); the escalation clock is not reset."""
    if (user is None) == (team is None):
        raise ApplicationError("Assign the alert to either a user or a team.")
    if (user is not None and alert.owner_user_id == user.pk) or (team is not None and alert.owner_team_id == team.pk):
        raise ApplicationError(f"Alert {alert.pk} is already assigned to {user or team}.")
    before = _alert_snapshot(alert)
    alert.owner_user, alert.owner_team = user, team
    alert.save(update_fields=["owner_user", "owner_team", "updated_at"])
    _audit(
        actor=actor,
        target_type=AuditEntry.Target.ALERT,
        target_id=alert.pk,
        target_repr=str(alert),
        action="assigned",
        before={"owner_user": before["owner_user"], "owner_team": before["owner_team"]},
        after={"owner_user": user.username if user else None, "owner_team": team.slug if team else None},
        note=note.strip(),
        alert=alert,
    ).save()
    return alert


# Evaluation --------------------------------------------------------------------------------------------------


class LabelResolver:
    """Catalog slugs for instance ids, loaded once per kind per cycle."""

    SOURCES = {
        "model": (MLModel, "slug"),
        "version": (ModelVersion, "version"),
        "environment": (Environment, "slug"),
        "service": (Service, "slug"),
        "pool": (CapacityPool, "slug"),
        "location": (Location, "code"),
    }

    def __init__(self) -> None:
        self._names: dict[str, dict[int, str]] = {}

    def _name(self, kind: str, pk: int) -> str:
        if kind not in self._names:
            model, attr = self.SOURCES[kind]
            self._names[kind] = dict(model.objects.values_list("pk", attr))
        return self._names[kind].get(pk, str(pk))

    def labels(self, ids: dict) -> dict[str, str]:
        out: dict[str, str] = {}
        if ids.get("kpi"):
            out["kpi"] = ids["kpi"]
        for kind in SCOPE_FIELDS:
            if ids.get(kind):
                out[kind] = self._name(kind, ids[kind])
        if ids.get("feature"):
            out["feature"] = ids["feature"]
        return out

    @staticmethod
    def fks(ids: dict) -> dict[str, int | None]:
        return {f"{kind}_id": ids.get(kind) or None for kind in SCOPE_FIELDS}


@dataclass
class CycleResult:
    slot: datetime
    evaluated: bool = False
    rules: int = 0
    instances: int = 0
    opened: int = 0
    fired: int = 0
    resolved: int = 0
    errors: dict[int, str] = field(default_factory=dict)
    notifications: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def transitions(self) -> int:
        return self.opened + self.fired + self.resolved


def evaluation_cycle(*, at: datetime | None = None) -> CycleResult:
    """Evaluate every enabled rule at ``at`` (now by default), once per minute slot.

    Opens, fires and resolves alerts, records each transition in the audit trail, applies silences, queues
    grouped notifications and escalations. Returns what it did; ``evaluated`` is False when the slot had already
    been evaluated (another worker, a retried task, or a later slot already done).
    """
    at = at or timezone.now()
    result = CycleResult(slot=at.replace(second=0, microsecond=0))
    EvaluatorState.get()
    started = time.monotonic()
    with transaction.atomic():
        claimed = (
            EvaluatorState.objects.filter(pk=1)
            .filter(Q(last_slot__isnull=True) | Q(last_slot__lt=result.slot))
            .update(last_slot=result.slot, last_started_at=timezone.now())
        )
        if not claimed:
            return result
        result.evaluated = True
        rules = list(AlertRule.objects.filter(enabled=True).order_by("pk"))
        result.rules = len(rules)
        open_alerts = _evaluate(rules, at, result)
        _apply_silences(open_alerts, at)
        result.notifications += _flush(open_alerts, at=at)
        result.notifications += _escalate(at)
        result.seconds = round(time.monotonic() - started, 3)
        EvaluatorState.objects.filter(pk=1).update(
            last_duration_seconds=result.seconds, last_rules=result.rules, last_transitions=result.transitions
        )
    return result


def _evaluate(rules: list[AlertRule], at: datetime, result: CycleResult) -> list[Alert]:
    """Move each rule instance through its states; returns the alerts open after this evaluation."""
    snapshot = Snapshot(at=at, rules=rules)
    by_rule: dict[int, dict[str, Alert]] = defaultdict(dict)
    for alert in Alert.objects.filter(resolved_at__isnull=True):
        by_rule[alert.rule_id][alert.fingerprint] = alert
    names = LabelResolver()
    created: list[Alert] = []
    changed: list[Alert] = []
    kept: list[Alert] = []
    transitions: list[tuple[Alert, str, str | None, str]] = []  # alert, action, state before, note

    def resolve(alert: Alert, note: str) -> None:
        before = alert.state
        alert.state, alert.resolved_at, alert.resolution = A.RESOLVED, at, note
        changed.append(alert)
        transitions.append((alert, "resolved", before, note))
        result.resolved += 1

    for rule in rules:
        open_for_rule = by_rule.pop(rule.pk, {})
        try:
            instances = snapshot.instances(rule)
        except EvaluationError as exc:
            result.errors[rule.pk] = str(exc)
            by_rule[rule.pk] = open_for_rule  # kept as they are: an error is not a recovery
            continue
        required = rule.consecutive_breaches
        for inst in instances:
            result.instances += 1
            value = None if inst.value is None else float(inst.value)
            verdict = outcome(rule, inst.value)
            alert = open_for_rule.pop(inst.fingerprint, None)
            if alert is None:
                if verdict != Outcome.BREACH:
                    continue
                step = advance(None, 0, verdict, required)
                alert = Alert(
                    rule=rule,
                    rule_name=rule.name,
                    fingerprint=inst.fingerprint,
                    labels=names.labels(inst.ids),
                    **names.fks(inst.ids),
                    state=step.state,
                    severity=rule.severity,
                    value=value,
                    threshold=rule.threshold,
                    breaches=step.breaches,
                    started_at=at,
                    fired_at=at if step.state == A.FIRING else None,
                    last_evaluated_at=at,
                    owner_user_id=rule.owner_user_id,
                    owner_team_id=rule.owner_team_id,
                    created_at=at,
                    updated_at=at,
                )
                created.append(alert)
                transitions.append((alert, "pending", None, inst.detail))
                result.opened += 1
                if step.state == A.FIRING:
                    transitions.append((alert, "firing", A.PENDING, ""))
                    result.fired += 1
                continue
            if alert.last_evaluated_at >= at:
                kept.append(alert)  # already evaluated at this time or later
                continue
            step = advance(alert.state, alert.breaches, verdict, required)
            before = (alert.state, alert.breaches, alert.value, alert.threshold, alert.severity)
            alert.threshold, alert.severity = rule.threshold, rule.severity
            if verdict != Outcome.KEEP:
                alert.value = value
            if step.state is None:
                was_firing = alert.state == A.FIRING
                why = "no data" if value is None else ("recovered" if was_firing else "cleared before firing")
                alert.breaches = 0
                alert.last_evaluated_at = at
                resolve(alert, why)
                continue
            if step.state == A.FIRING and alert.state == A.PENDING:
                alert.fired_at = at
                transitions.append((alert, "firing", A.PENDING, ""))
                result.fired += 1
            alert.state, alert.breaches = step.state, step.breaches
            if (alert.state, alert.breaches, alert.value, alert.threshold, alert.severity) != before:
                alert.last_evaluated_at = at
                changed.append(alert)
            else:
                kept.append(alert)  # nothing new to write
        for alert in open_for_rule.values():
            resolve(alert, "no longer in the rule's scope (series stopped reporting, or the scope changed)")
    # Open alerts of rules no longer enabled (changed outside the portal's services) end here too.
    for rule_alerts in by_rule.values():
        for alert in rule_alerts.values():
            if alert.rule_id not in result.errors:
                resolve(alert, "rule disabled")

    _insert_alerts(created)
    for alert in changed:
        alert.updated_at = at
    update_rows(
        Alert,
        [
            "state",
            "value",
            "threshold",
            "severity",
            "breaches",
            "fired_at",
            "resolved_at",
            "resolution",
            "last_evaluated_at",
            "updated_at",
        ],
        changed,
    )
    _insert_audit(
        (at, alert, action, {"state": before} if before else None, {"state": action, "value": alert.value}, note)
        for alert, action, before, note in transitions
    )
    AlertRule.objects.filter(pk__in=[r.pk for r in rules if r.last_error and r.pk not in result.errors]).update(
        last_error=""
    )
    for rule_id, message in result.errors.items():
        AlertRule.objects.filter(pk=rule_id).update(last_error=message[:2000])
    still_open = [a for a in created + changed if a.resolved_at is None]
    untouched = [a for alerts in by_rule.values() for a in alerts.values() if a.resolved_at is None]
    return still_open + untouched + kept


ALERT_INSERT_FIELDS = [
    "rule",
    "rule_name",
    "fingerprint",
    "labels",
    *SCOPE_FIELDS,
    "state",
    "severity",
    "value",
    "threshold",
    "breaches",
    "started_at",
    "fired_at",
    "last_evaluated_at",
    "owner_user",
    "owner_team",
    "resolution",
    "ack_note",
    "created_at",
    "updated_at",
]
AUDIT_INSERT_FIELDS = [
    "at",
    "actor_name",
    "target_type",
    "target_id",
    "target_repr",
    "action",
    "before",
    "after",
    "note",
    "alert",
]


def _insert_alerts(alerts: list[Alert]) -> None:
    """Insert new alerts as plain rows, then read their ids back by (rule, fingerprint), which the open-alert
    constraint makes unique."""
    if not alerts:
        return
    attnames = [Alert._meta.get_field(f).attname for f in ALERT_INSERT_FIELDS]
    insert_rows(Alert, ALERT_INSERT_FIELDS, [[getattr(a, name) for name in attnames] for a in alerts])
    ids = {
        (rule_id, fp): pk
        for rule_id, fp, pk in Alert.objects.filter(
            resolved_at__isnull=True, rule_id__in={a.rule_id for a in alerts}
        ).values_list("rule_id", "fingerprint", "pk")
    }
    for alert in alerts:
        alert.pk = ids[(alert.rule_id, alert.fingerprint)]
        alert._state.adding = False


def _insert_audit(entries) -> None:
    """Evaluator entries (no actor) as plain rows: (at, alert, action, before, after, note)."""
    rows = [
        [at, EVALUATOR, AuditEntry.Target.ALERT, alert.pk, str(alert)[:250], action, before, after, note, alert.pk]
        for at, alert, action, before, after, note in entries
    ]
    insert_rows(AuditEntry, AUDIT_INSERT_FIELDS, rows)


def _apply_silences(open_alerts: list[Alert], at: datetime) -> None:
    """Point each open alert at the active silence that matches it (or none), recording each change."""
    active = list(Silence.objects.filter(starts_at__lte=at, ends_at__gt=at).order_by("ends_at", "pk"))
    entries: list[tuple] = []
    changed: list[Alert] = []
    for alert in open_alerts:
        match = next((s for s in active if s.matches(alert)), None)
        new_id = match.pk if match else None
        if new_id == alert.silenced_by_id:
            continue
        before = alert.silenced_by_id
        alert.silenced_by_id = new_id
        changed.append(alert)
        entries.append(
            (
                at,
                alert,
                "silenced" if new_id else "unsilenced",
                {"silenced_by": before},
                {"silenced_by": new_id},
                match.comment if match else "the silence ended",
            )
        )
    update_rows(Alert, ["silenced_by"], changed)
    _insert_audit(entries)


# Notification grouping ---------------------------------------------------------------------------------------


def _flush(open_alerts: list[Alert], *, at: datetime) -> list[int]:
    firing_rules = {a.rule_id for a in open_alerts if a.state == A.FIRING}
    notified_rules = set(NotificationGroup.objects.filter(has_notified=True).values_list("rule_id", flat=True))
    return _flush_rules(firing_rules | notified_rules, at=at, open_alerts=open_alerts)


def _flush_rules(rule_ids, *, at: datetime, open_alerts: list[Alert] | None = None, force: bool = False) -> list[int]:
    """Send what changed since each (rule, channel) group's last message, as Alertmanager groups do.

    A group announces instances that started firing and those that resolved, at most once per group interval
    (changes in between wait and go together, so a flapping rule sends one message per interval, not one per
    flap); an unchanged firing group is re-sent after the repeat interval unless every alert is acknowledged.
    Silenced alerts are left out. ``force`` ignores the group interval (a rule being disabled or deleted).
    """
    rule_ids = {r for r in rule_ids if r}
    if not rule_ids:
        return []
    if open_alerts is None:
        open_alerts = list(Alert.objects.filter(rule_id__in=rule_ids, resolved_at__isnull=True))
    firing: dict[int, list[Alert]] = defaultdict(list)
    for alert in open_alerts:
        if alert.state == A.FIRING and alert.rule_id in rule_ids:
            firing[alert.rule_id].append(alert)
    links = AlertRule.channels.through.objects.filter(alertrule_id__in=rule_ids).values_list(
        "alertrule_id", "notificationchannel_id"
    )
    channels_of: dict[int, list[int]] = defaultdict(list)
    for rule_id, channel_id in links:
        channels_of[rule_id].append(channel_id)
    if not channels_of:
        return []
    channels = {
        c.pk: c for c in NotificationChannel.objects.filter(pk__in={c for cs in channels_of.values() for c in cs})
    }
    rules = {r.pk: r for r in AlertRule.objects.filter(pk__in=channels_of).select_related("owner_user", "owner_team")}
    groups = {(g.rule_id, g.channel_id): g for g in NotificationGroup.objects.filter(rule_id__in=channels_of)}
    created: list[int] = []
    for rule_id, channel_ids in channels_of.items():
        rule = rules[rule_id]
        all_firing = {a.fingerprint: a for a in firing.get(rule_id, [])}
        loud = {fp: a for fp, a in all_firing.items() if a.silenced_by_id is None}
        for channel_id in channel_ids:
            channel = channels[channel_id]
            group = groups.get((rule_id, channel_id))
            if not channel.enabled or (group is None and not loud):
                continue
            notification = _flush_group(rule, channel, group, all_firing, loud, at=at, force=force)
            if notification is not None:
                created.append(notification.pk)
    return created


def _flush_group(rule, channel, group, all_firing: dict, loud: dict, *, at: datetime, force: bool):
    kinds = NotificationChannel.Kind
    previous = set(group.notified) if group else set()
    resolved_fps = previous - set(all_firing)
    new_fps = set(loud) - previous
    next_notified = sorted((previous - resolved_fps) | set(loud))
    group_interval = timedelta(minutes=rule.group_interval_minutes)
    repeat = timedelta(minutes=rule.repeat_interval_minutes)
    if channel.kind == kinds.ALERTMANAGER:
        group_interval, repeat = timedelta(0), ALERTMANAGER_RESEND
    last = group.last_sent_at if group else None
    if new_fps or resolved_fps:
        if last is not None and at - last < group_interval and not force:
            return None  # the change waits for the group interval, together with any further changes
        kind = Notification.Kind.FIRING if new_fps else Notification.Kind.RESOLVED
        silent = not new_fps and not channel.send_resolved and channel.kind != kinds.ALERTMANAGER
    elif loud and last is not None and at - last >= repeat and any(a.acknowledged_at is None for a in loud.values()):
        kind, silent = Notification.Kind.REPEAT, False
    else:
        return None
    if group is None:
        group, _ = NotificationGroup.objects.get_or_create(rule=rule, channel=channel)
    claimed = NotificationGroup.objects.filter(pk=group.pk, seq=group.seq).update(
        seq=group.seq + 1, last_sent_at=at, notified=next_notified, has_notified=bool(next_notified)
    )
    if not claimed or silent:
        return None  # another worker sent this group's message (or there is nothing to say)
    seq = group.seq + 1
    firing_alerts = sorted(loud.values(), key=lambda a: a.label_text)
    resolved_alerts = _latest_resolved(rule, resolved_fps)
    return _notification(
        rule=rule,
        channel=channel,
        kind=kind,
        key=f"g{group.pk}:{seq}",
        group=group,
        seq=seq,
        firing=firing_alerts,
        resolved=resolved_alerts,
        at=at,
    )


def _latest_resolved(rule: AlertRule, fingerprints: set[str]) -> list[Alert]:
    if not fingerprints:
        return []
    latest: dict[str, Alert] = {}
    for alert in Alert.objects.filter(rule=rule, fingerprint__in=fingerprints, resolved_at__isnull=False).order_by(
        "fingerprint", "-resolved_at"
    ):
        latest.setdefault(alert.fingerprint, alert)
    return sorted(latest.values(), key=lambda a: a.label_text)


def _owner_addresses(alerts: list[Alert]) -> list[str]:
    addresses = []
    for alert in alerts:
        if alert.owner_user_id and alert.owner_user.email:
            addresses.append(alert.owner_user.email)
        elif alert.owner_team_id and hasattr(alert.owner_team, "alert_contact"):
            addresses.append(alert.owner_team.alert_contact.email)
    return addresses


def _notification(*, rule, channel, kind, key, group, seq, firing, resolved, at) -> Notification:
    kinds = NotificationChannel.Kind
    repeat = kind == Notification.Kind.REPEAT
    title = notify.subject(rule=rule, firing=firing, resolved=resolved, repeat=repeat)
    recipients: list[str] = []
    if channel.kind == kinds.EMAIL:
        recipients = list(channel.email_to or [])
        if channel.email_owner:
            recipients += _owner_addresses(firing + resolved)
        recipients = list(dict.fromkeys(recipients))
        payload = {"text": notify.text_body(rule=rule, firing=firing, resolved=resolved)}
    elif channel.kind == kinds.SLACK:
        payload = notify.slack_body(rule=rule, firing=firing, resolved=resolved, repeat=repeat)
    elif channel.kind == kinds.ALERTMANAGER:
        payload = {"alerts": notify.alertmanager_alerts(rule=rule, firing=firing, resolved=resolved, at=at)}
    else:
        payload = notify.alertmanager_webhook(channel=channel, rule=rule, firing=firing, resolved=resolved)
    notification = Notification.objects.create(
        key=key,
        group=group,
        seq=seq,
        rule=rule,
        channel=channel,
        kind=kind,
        recipients=recipients,
        subject=title[:250],
        payload=payload,
        max_attempts=channel.max_attempts,
        next_attempt_at=at,
        created_at=at,
    )
    notification.alerts.set(firing + resolved)
    return notification


def _escalate(at: datetime) -> list[int]:
    """Tell the escalation contact about firing alerts nobody acknowledged in time (once per alert)."""
    due = Alert.objects.filter(
        state=A.FIRING,
        acknowledged_at__isnull=True,
        escalated_at__isnull=True,
        silenced_by__isnull=True,
        rule__escalation_user__isnull=False,
        rule__escalate_after_minutes__isnull=False,
    ).select_related("rule", "rule__escalation_user", "owner_user", "owner_team")
    created = []
    for alert in due:
        minutes = alert.rule.escalate_after_minutes
        if at - alert.fired_at < timedelta(minutes=minutes):
            continue
        if not Alert.objects.filter(pk=alert.pk, escalated_at__isnull=True).update(escalated_at=at):
            continue
        contact = alert.rule.escalation_user
        title, body = notify.escalation_text(alert, alert.rule, minutes)
        notification = Notification.objects.create(
            key=f"esc:{alert.pk}:1",
            rule=alert.rule,
            kind=Notification.Kind.ESCALATION,
            recipients=[contact.email] if contact.email else [],
            subject=title[:250],
            payload={"text": body},
            next_attempt_at=at,
            created_at=at,
        )
        notification.alerts.add(alert)
        _audit(
            actor=None,
            target_type=AuditEntry.Target.ALERT,
            target_id=alert.pk,
            target_repr=str(alert),
            action="escalated",
            note=f"not acknowledged within {minutes} min: {contact.get_full_name() or contact.username} told",
            alert=alert,
            at=at,
        ).save()
        created.append(notification.pk)
    return created


@transaction.atomic
def channel_test(*, channel: NotificationChannel, actor, at: datetime | None = None) -> Notification:
    """A test message through a channel, delivered like any other."""
    at = at or timezone.now()
    title = f"[TEST] opsportal test message to {channel.name}"
    text = f"A test message sent by {_actor_name(actor)} at {at:%Y-%m-%d %H:%M:%S} UTC. No alert is firing."
    if channel.kind == NotificationChannel.Kind.SLACK:
        payload = {"text": title, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
    elif channel.kind == NotificationChannel.Kind.WEBHOOK:
        payload = {
            "version": "4",
            "receiver": channel.name,
            "status": "resolved",
            "alerts": [],
            "test": True,
            "commonAnnotations": {"summary": text},
            "externalURL": settings.PORTAL_BASE_URL,
        }
    elif channel.kind == NotificationChannel.Kind.ALERTMANAGER:
        payload = {"alerts": []}
    else:
        payload = {"text": text + "\n"}
    recipients = list(channel.email_to or []) + ([actor.email] if channel.email_owner and actor.email else [])
    return Notification.objects.create(
        key=f"test:{channel.pk}:{int(at.timestamp() * 1000)}",
        channel=channel,
        kind=Notification.Kind.TEST,
        recipients=recipients,
        subject=title,
        payload=payload,
        max_attempts=1,
        next_attempt_at=at,
        created_at=at,
    )


# Delivery ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryOutcome:
    notification: Notification
    status: str
    retry_in: float | None = None


def _send(notification: Notification) -> notify.SendResult:
    channel = notification.channel
    if notification.kind == Notification.Kind.ESCALATION or channel is None:
        return notify.send_email(
            subject_line=notification.subject,
            body=notification.payload.get("text", ""),
            recipients=list(notification.recipients),
            timeout=10,
        )
    if not channel.enabled:
        return notify.SendResult(False, error=f"channel {channel.name} is disabled", retryable=False)
    kinds = NotificationChannel.Kind
    if channel.kind == kinds.EMAIL:
        return notify.send_email(
            subject_line=notification.subject,
            body=notification.payload.get("text", ""),
            recipients=list(notification.recipients),
            timeout=channel.timeout_seconds,
        )
    if channel.kind == kinds.ALERTMANAGER:
        url = channel.url.rstrip("/") + "/api/v2/alerts"
        return notify.post_json(
            channel=channel,
            url=url,
            payload=notification.payload.get("alerts", []),
            key=notification.key,
            attempt=notification.attempts,
        )
    return notify.post_json(
        channel=channel,
        url=channel.url,
        payload=notification.payload,
        key=notification.key,
        attempt=notification.attempts,
    )


def notification_deliver(*, notification_id: int, now: datetime | None = None) -> DeliveryOutcome | None:
    """Try to deliver one notification, if it is due and nobody else is sending it; record the attempt.

    Claimed with a conditional update (pending or waiting-to-retry and due, or a sender's lock that expired), so
    two workers never send it together and a delivered notification is never sent again. A failure is retried
    after ``backoff * 2^(attempt - 1)`` seconds (at most an hour) until the channel's attempts are used up.
    Returns None when there was nothing to do.
    """
    now = now or timezone.now()
    notification = Notification.objects.select_related("channel").filter(pk=notification_id).first()
    if notification is None:
        return None
    timeout = notification.channel.timeout_seconds if notification.channel else 10
    S = Notification.Status
    claimed = (
        Notification.objects.filter(pk=notification.pk)
        .filter(
            Q(status__in=[S.PENDING, S.RETRYING], next_attempt_at__lte=now) | Q(status=S.SENDING, locked_until__lt=now)
        )
        .update(status=S.SENDING, locked_until=now + timedelta(seconds=timeout + 60), attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    notification.refresh_from_db()
    started = time.monotonic()
    sent = _send(notification)
    NotificationAttempt.objects.create(
        notification=notification,
        number=notification.attempts,
        started_at=now,
        duration_ms=int((time.monotonic() - started) * 1000),
        ok=sent.ok,
        status_code=sent.status_code,
        response=sent.response,
        error=sent.error,
    )
    retry_in = None
    if sent.ok:
        notification.status, notification.delivered_at, notification.last_error = S.DELIVERED, now, ""
    elif not sent.retryable or notification.attempts >= notification.max_attempts:
        notification.status, notification.last_error = S.FAILED, sent.error
    else:
        backoff = notification.channel.backoff_seconds if notification.channel else 60
        retry_in = min(backoff * 2 ** (notification.attempts - 1), MAX_BACKOFF_SECONDS)
        notification.status, notification.last_error = S.RETRYING, sent.error
        notification.next_attempt_at = now + timedelta(seconds=retry_in)
    notification.locked_until = None
    notification.save(update_fields=["status", "delivered_at", "last_error", "next_attempt_at", "locked_until"])
    resend = notification.kind == Notification.Kind.REPEAT and (
        notification.channel is not None and notification.channel.kind == NotificationChannel.Kind.ALERTMANAGER
    )
    if notification.status in (S.DELIVERED, S.FAILED) and not resend:
        _audit_delivery(notification, now)  # Alertmanager's regular re-sends would only crowd the timeline
    return DeliveryOutcome(notification, notification.status, retry_in)


def _audit_delivery(notification: Notification, at: datetime) -> None:
    where = notification.channel.name if notification.channel else ", ".join(notification.recipients) or "nobody"
    delivered = notification.status == Notification.Status.DELIVERED
    note = f"{notification.get_kind_display().lower()} via {where}"
    if not delivered:
        note += f" failed after {notification.attempts} attempt(s): {notification.last_error}"
    AuditEntry.objects.bulk_create(
        [
            _audit(
                actor=None,
                target_type=AuditEntry.Target.ALERT,
                target_id=alert.pk,
                target_repr=str(alert),
                action="notified" if delivered else "notify_failed",
                note=note[:2000],
                alert=alert,
                at=at,
            )
            for alert in notification.alerts.all()
        ]
    )


def notifications_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Notifications waiting to be sent or retried, and ones whose sender died mid-way (lock expired)."""
    now = now or timezone.now()
    S = Notification.Status
    # New notifications are queued by the cycle that made them; the sweep only picks up those still waiting a
    # minute later (a lost task), so it does not race the first attempt.
    return list(
        Notification.objects.filter(
            Q(status=S.PENDING, next_attempt_at__lte=now - timedelta(minutes=1))
            | Q(status=S.RETRYING, next_attempt_at__lte=now)
            | Q(status=S.SENDING, locked_until__lt=now)
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def notifications_purge(*, now: datetime | None = None, days: int = 90) -> int:
    """Delete delivered or failed notifications (and their attempts) older than ``days``; alerts keep their timeline."""
    now = now or timezone.now()
    deleted, _ = Notification.objects.filter(
        status__in=[Notification.Status.DELIVERED, Notification.Status.FAILED],
        created_at__lt=now - timedelta(days=days),
    ).delete()
    return deleted
