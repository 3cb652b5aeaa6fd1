"""Replay a rule (saved or not) over the stored history: when it would have gone pending, fired and resolved.

The replay walks the hours of the last 7 or 30 days. Within one historical hour every evaluation sees the same
buckets (the hour is complete now), so an hour counts as ``3600 / interval`` evaluations with one outcome, where
``interval`` is the evaluation schedule (every minute by default): a rule needing 3 consecutive breaches fires
3 evaluations into the first breaching hour, as it would have live. Drift is replayed once a day, a KPI once a
day with its month-to-date value. Nothing is written.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from .evaluation import (
    DRIFT_METRICS,
    TELEMETRY_SOURCES,
    DriftFrame,
    EvaluationError,
    Instance,
    KpiFrame,
    TelemetryFrame,
    _group_by,
    _scope_ids,
    advance,
    floor_hour,
    hour_index,
    outcome,
    telemetry_value,
)
from .models import AlertRule

MAX_CHART_INSTANCES = 8
DEFAULT_INTERVAL_SECONDS = 60


@dataclass
class Episode:
    labels: dict
    pending_at: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None


@dataclass
class InstanceHistory:
    ids: dict
    labels: dict
    points: list[tuple[datetime, float | None]] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)

    @property
    def label(self) -> str:
        return " · ".join(str(v) for v in self.labels.values()) or "all series"

    @property
    def fired(self) -> int:
        return sum(1 for e in self.episodes if e.fired_at)


@dataclass
class Preview:
    rule: AlertRule
    days: int
    start: datetime
    end: datetime
    interval_seconds: int
    step: str  # "hour" | "day"
    instances: list[InstanceHistory]
    error: str = ""

    @property
    def episodes(self) -> list[Episode]:
        return sorted((e for i in self.instances for e in i.episodes), key=lambda e: e.pending_at)

    @property
    def fired_episodes(self) -> list[Episode]:
        return [e for e in self.episodes if e.fired_at]

    @property
    def firing_hours(self) -> float:
        total = timedelta(0)
        for e in self.fired_episodes:
            total += (e.resolved_at or self.end) - e.fired_at
        return round(total.total_seconds() / 3600, 1)

    @property
    def has_data(self) -> bool:
        return any(v is not None for i in self.instances for _, v in i.points)

    @property
    def chart_instances(self) -> list[InstanceHistory]:
        ranked = sorted(self.instances, key=lambda i: (-i.fired, -len(i.episodes), i.label))
        return ranked[:MAX_CHART_INSTANCES]


def evaluation_interval_seconds() -> int:
    """The evaluation schedule's interval (admins may change it under Settings)."""
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.filter(task="alerts.evaluate", enabled=True).select_related("interval").first()
    if task is None or task.interval is None:
        return DEFAULT_INTERVAL_SECONDS
    return max(1, int(timedelta(**{task.interval.period: task.interval.every}).total_seconds()))


@dataclass(frozen=True)
class Segment:
    """A stretch of time in which every evaluation has the same value: ``evaluations`` of them, evenly spread."""

    start: datetime
    seconds: float
    evaluations: int
    value: float | None

    def time_of(self, nth: int) -> datetime:
        """When the nth (1-based) evaluation of the segment happened."""
        return self.start + timedelta(seconds=(nth - 1) * self.seconds / self.evaluations)


def _replay(history: InstanceHistory, rule: AlertRule, segments: list[Segment]) -> None:
    """Run the state machine over the segments and record the episodes (pending, fired, resolved)."""
    state, breaches, episode = None, 0, None
    for segment in segments:
        history.points.append((segment.start, segment.value))
        step = advance(state, breaches, outcome(rule, segment.value), rule.consecutive_breaches, segment.evaluations)
        if step.opened_after is not None:
            episode = Episode(labels=history.labels, pending_at=segment.time_of(step.opened_after))
            history.episodes.append(episode)
        if step.fired_after is not None and episode is not None:
            episode.fired_at = segment.time_of(step.fired_after)
        if step.resolved_after is not None and episode is not None:
            episode.resolved_at = segment.time_of(step.resolved_after)
            episode = None
        state, breaches = step.state, step.breaches


def rule_preview(rule: AlertRule, *, days: int = 7, end: datetime | None = None) -> Preview:
    from .services import LabelResolver

    end = end or timezone.now()
    start = floor_hour(end - timedelta(days=days))
    interval = evaluation_interval_seconds()
    names = LabelResolver()
    preview = Preview(rule, days, start, end, interval, "hour", [])
    try:
        if rule.metric in TELEMETRY_SOURCES:
            _telemetry(preview, names)
        elif rule.metric in DRIFT_METRICS or rule.metric == AlertRule.Metric.KPI:
            preview.step = "day"
            _daily(preview, names)
    except EvaluationError as exc:
        preview.error = str(exc)
    return preview


def _spans(start: datetime, end: datetime, step: timedelta):
    """(start, seconds) of each step from ``start`` to ``end``; the last one stops at ``end``."""
    moment = start
    while moment <= end:
        yield moment, max(1.0, min(step, end - moment).total_seconds())
        moment += step


def _evaluations(seconds: float, interval: int) -> int:
    return max(1, int(seconds // interval))


def _telemetry(preview: Preview, names) -> None:
    rule = preview.rule
    hours = rule.window_minutes // 60
    frame = TelemetryFrame(
        metrics=TELEMETRY_SOURCES[rule.metric],
        first=preview.start - timedelta(hours=hours),
        last=floor_hour(preview.end),
        live_since=None,
    )
    group_by = _group_by(rule)
    groups = frame.matching(_scope_ids(rule), TELEMETRY_SOURCES[rule.metric], group_by)
    for key, by_metric in sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        ids = dict(zip(group_by, key, strict=True))
        history = InstanceHistory(ids=ids, labels=names.labels(ids))
        segments = []
        for hour, seconds in _spans(preview.start, preview.end, timedelta(hours=1)):
            value = telemetry_value(
                frame, rule.metric, by_metric, last=hour_index(hour), hours=hours, seconds=(hours + 1) * 3600
            )
            segments.append(Segment(hour, seconds, _evaluations(seconds, preview.interval_seconds), value))
        _replay(history, rule, segments)
        preview.instances.append(history)


def _daily(preview: Preview, names) -> None:
    rule = preview.rule
    days = list(_spans(preview.start.replace(hour=0), preview.end, timedelta(days=1)))
    histories: dict[str, InstanceHistory] = {}
    series: dict[str, list] = {}
    if rule.metric in DRIFT_METRICS:
        reach = timedelta(minutes=rule.window_minutes) + timedelta(days=rule.drift_reference_days)
        frame = DriftFrame(since=preview.start - reach, until=preview.end)
        evaluate = lambda at: frame.instances(rule, at=at)  # noqa: E731
    else:
        from apps.core.periods import Period

        kpis = KpiFrame(at=preview.end)

        def evaluate(at: datetime) -> list[Instance]:
            today = at.astimezone(UTC).date()
            return kpis.instances(rule, period=Period("custom", today.replace(day=1), today + timedelta(days=1)))

    interval = preview.interval_seconds
    for n, (day, seconds) in enumerate(days):
        at = day + timedelta(seconds=seconds - 1)
        for inst in evaluate(at):
            if inst.fingerprint not in histories:
                histories[inst.fingerprint] = InstanceHistory(ids=inst.ids, labels=names.labels(inst.ids))
                series[inst.fingerprint] = [Segment(d, s, _evaluations(s, interval), None) for d, s in days[:n]]
            value = None if inst.value is None else float(inst.value)
            series[inst.fingerprint].append(Segment(day, seconds, _evaluations(seconds, interval), value))
    for fp, history in histories.items():
        _replay(history, rule, series[fp])
        preview.instances.append(history)
