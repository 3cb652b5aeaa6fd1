"""Writes of telemetry: storing points (push API and pulls share it), rollups, Prometheus pulls, retention."""

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.exceptions import ApplicationError

from . import storage
from .metrics import LATENCY_METRICS
from .models import (
    DIMENSIONS,
    MetricMapping,
    Point,
    RetentionState,
    Rollup,
    Series,
    TelemetryPull,
    TelemetrySource,
)
from .presets import PRESETS
from .prometheus import (
    PrometheusClient,
    PrometheusError,
    RangeResult,
    align,
    chunk_windows,
    render_query,
)
from .push import MAX_POINTS_PER_BATCH, CatalogLookup, Dims, PointError, PointIn, parse_points

logger = logging.getLogger(__name__)

MAX_RECORDED_ERRORS = 100
GRAIN_DELTA = {Rollup.Grain.HOUR: timedelta(hours=1), Rollup.Grain.DAY: timedelta(days=1)}


def raw_retention_days() -> int:
    return int(getattr(settings, "TELEMETRY_RAW_RETENTION_DAYS", 35))


def hourly_retention_days() -> int:
    return int(getattr(settings, "TELEMETRY_HOURLY_RETENTION_DAYS", 400))


def floor_to(moment: datetime, grain: str) -> datetime:
    moment = moment.astimezone(UTC)
    if grain == Rollup.Grain.DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def _batched(items: Iterable, size: int) -> Iterable[list]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


# Storing points ---------------------------------------------------------------------------------------------


@dataclass
class StoreResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    series: int = 0

    @property
    def stored(self) -> int:
        return self.created + self.updated


def series_ids(identities: Iterable[tuple[str, Dims]]) -> dict[tuple[str, Dims], int]:
    """Find or create the series of each (metric, dims) identity; one query when they all exist."""
    keys = {Series.make_key(metric, dims.as_dict()): (metric, dims) for metric, dims in set(identities)}
    found = dict(Series.objects.filter(key__in=keys).values_list("key", "pk"))
    missing = [k for k in keys if k not in found]
    if missing:
        Series.objects.bulk_create(
            [
                Series(
                    key=k,
                    metric=keys[k][0],
                    **{f"{d}_id": getattr(keys[k][1], d) for d in DIMENSIONS},
                )
                for k in missing
            ],
            ignore_conflicts=True,  # a concurrent writer may have created it: then it is simply found below
            batch_size=500,
        )
        found.update(Series.objects.filter(key__in=missing).values_list("key", "pk"))
    return {identity: found[key] for key, identity in keys.items()}


@transaction.atomic
def points_store(points: list[PointIn]) -> StoreResult:
    """Store valid points, idempotently on (series, ts): a repeat changes nothing, a new value replaces the old.

    Then rebuilds the hourly and daily rollups of every bucket that changed.
    """
    result = StoreResult()
    if not points:
        return result
    ids = series_ids((p.metric, p.dims) for p in points)
    incoming: dict[tuple[int, datetime], float] = {}
    for p in points:
        incoming[(ids[(p.metric, p.dims)], p.ts.astimezone(UTC))] = p.value
    result.series = len({sid for sid, _ in incoming})
    existing: dict[tuple[int, datetime], float] = {}
    for chunk in _batched(_windows(incoming).items(), 200):
        existing.update(storage.existing_points(dict(chunk)))

    to_write = []
    for (sid, ts), value in incoming.items():
        old = existing.get((sid, ts))
        if old is None:
            result.created += 1
        elif old == value:
            result.unchanged += 1
            continue
        else:
            result.updated += 1
        to_write.append((sid, ts, value))
    if to_write:
        storage.upsert_points(to_write)
        rollups_refresh(_windows((sid, ts) for sid, ts, _ in to_write))
    return result


def _windows(keys: Iterable[tuple[int, datetime]]) -> dict[int, tuple[datetime, datetime]]:
    """Per series, the first and last timestamp among ``keys``."""
    windows: dict[int, tuple[datetime, datetime]] = {}
    for sid, ts in keys:
        lo, hi = windows.get(sid, (ts, ts))
        windows[sid] = (min(lo, ts), max(hi, ts))
    return windows


# Rollups ----------------------------------------------------------------------------------------------------


def percentile(ordered: list[float], q: float) -> float:
    """Linear-interpolation percentile of sorted values (numpy's default method); ``q`` in [0, 100]."""
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rollups_refresh(touched: dict[int, tuple[datetime, datetime]]) -> None:
    """Rebuild the hourly and daily rollups of the buckets covering each series' (first, last) changed time.

    Counts, sums, minima and maxima are aggregated and upserted inside the database; percentiles of latency
    series are computed from their raw points here, since SQL has no portable percentile.
    """
    latency = set(Series.objects.filter(pk__in=touched, metric__in=LATENCY_METRICS).values_list("pk", flat=True))
    for grain, delta in GRAIN_DELTA.items():
        windows = {sid: (floor_to(lo, grain), floor_to(hi, grain) + delta) for sid, (lo, hi) in touched.items()}
        for chunk in _batched(windows.items(), 200):
            part = dict(chunk)
            storage.rebuild_rollups(grain, part)
            latency_part = {sid: w for sid, w in part.items() if sid in latency}
            storage.set_percentiles(
                grain,
                (
                    (sid, bucket, percentile(values, 50), percentile(values, 95), percentile(values, 99))
                    for sid, bucket, values in storage.bucket_values(grain, latency_part)
                ),
            )


# Push API ---------------------------------------------------------------------------------------------------


@dataclass
class PushResult:
    received: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    series: int = 0
    errors: list[PointError] = field(default_factory=list)

    @property
    def rejected_points(self) -> int:
        return len({e.index for e in self.errors})

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.created + self.updated,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected_points,
            "series": self.series,
            "errors": [e.as_dict() for e in self.errors],
        }


class PushRejected(ApplicationError):
    """The batch was refused as a whole; ``errors`` says which points and why. Nothing was stored."""

    def __init__(self, message: str, errors: list[PointError] | None = None, received: int = 0) -> None:
        super().__init__(message)
        self.errors = errors or []
        self.received = received


def telemetry_push(*, points: Any, partial: bool = False, now: datetime | None = None) -> PushResult:
    """Validate and store a batch of points (the push API's and the demo's path in).

    By default a batch with any invalid point is refused whole (``PushRejected``, nothing stored), so a batch
    job can fix and resend it. With ``partial=True`` the valid points are stored and the invalid ones come
    back in ``errors``. Either way a repeat of a stored point is counted ``unchanged`` and not written again.
    """
    now = now or timezone.now()
    if not isinstance(points, list):
        raise PushRejected("'points' must be a list of point objects", [PointError(None, "points", None, "required")])
    if not points:
        raise PushRejected("the batch has no points", [PointError(None, "points", [], "expected at least one point")])
    if len(points) > MAX_POINTS_PER_BATCH:
        raise PushRejected(
            f"a batch holds at most {MAX_POINTS_PER_BATCH} points; this one has {len(points)}: split it",
            [PointError(None, "points", len(points), f"at most {MAX_POINTS_PER_BATCH} points")],
            received=len(points),
        )
    valid, errors = parse_points(points, now=now, purged_before=RetentionState.get().raw_purged_before)
    if errors and not partial:
        bad = len({e.index for e in errors})
        raise PushRejected(
            f"{bad} of {len(points)} points are invalid, so nothing was stored; fix them and resend the batch, "
            "or send partial=true to store the valid points only",
            errors,
            received=len(points),
        )
    stored = points_store(valid)
    return PushResult(
        received=len(points),
        created=stored.created,
        updated=stored.updated,
        unchanged=stored.unchanged + (len(points) - len(valid) - len({e.index for e in errors})),
        series=stored.series,
        errors=errors,
    )


# Prometheus pulls -------------------------------------------------------------------------------------------


class MissingCredential(ApplicationError):
    pass


def source_headers(source: TelemetrySource) -> dict[str, str]:
    """The source's auth header, its value read from the named environment variable at pull time."""
    if not source.auth_header:
        return {}
    if not source.auth_env_var:
        raise MissingCredential(f"source '{source.name}' has an auth header but no environment variable to read it")
    # The secret stays in the worker's environment (a deliberate exception to reading env only in settings/).
    value = os.environ.get(source.auth_env_var)
    if not value:
        raise MissingCredential(
            f"environment variable {source.auth_env_var} (the {source.auth_header} header of '{source.name}') is not "
            "set in the worker's environment"
        )
    return {source.auth_header: value}


def source_apply_preset(*, source: TelemetrySource, preset: str | None = None) -> list[MetricMapping]:
    """Create the preset's metric mappings on a source (skipping metrics it already maps)."""
    preset = preset or source.preset
    if preset not in PRESETS:
        raise ApplicationError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    have = set(source.mappings.values_list("metric", flat=True))
    created = []
    for spec in PRESETS[preset]:
        if spec["metric"] in have:
            continue
        labels = {f"{dim}_label": label for dim, label in spec["labels"].items()}
        created.append(
            MetricMapping.objects.create(source=source, metric=spec["metric"], query=spec["query"], **labels)
        )
    return created


@dataclass
class _PullTally:
    requests: int = 0
    received: int = 0
    stored: int = 0
    skipped: int = 0
    series: set = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    window_start: datetime | None = None
    window_end: datetime | None = None

    def error(self, message: str) -> None:
        if len(self.errors) < MAX_RECORDED_ERRORS:
            self.errors.append(message)


def mapping_points(mapping: MetricMapping, result: RangeResult, tally: _PullTally) -> list[PointIn]:
    """Turn a range query's series into points, resolving labels to catalog ids; unmapped series are skipped
    and said so."""
    refs_per_series = []
    for rs in result.series:
        refs: dict[str, Any] = {}
        for dim in DIMENSIONS:
            label = mapping.label_for(dim)
            value = rs.labels.get(label) if label else None
            if value is None:
                value = mapping.fixed_labels.get(dim)
            aliases = mapping.value_aliases.get(dim, {}) if isinstance(mapping.value_aliases, dict) else {}
            refs[dim] = aliases.get(value, value) if value not in (None, "") else None
        refs_per_series.append(refs)
    catalog = CatalogLookup(refs_per_series)
    points = []
    for rs, refs in zip(result.series, refs_per_series, strict=True):
        tally.skipped += rs.skipped
        dims, errors = catalog.resolve(mapping.metric, refs)
        if dims is None:
            tally.skipped += len(rs.samples)
            problems = "; ".join(f"{e.field} {e.value!r}: {e.message}" for e in errors)
            tally.error(f"{mapping.metric} series {rs.labels}: {problems}; {len(rs.samples)} samples skipped")
            continue
        points += [PointIn(mapping.metric, ts, value, dims) for ts, value in rs.samples]
    return points


def _claim(source: TelemetrySource, now: datetime) -> bool:
    limit = timedelta(seconds=getattr(settings, "CELERY_TASK_TIME_LIMIT", 1800))
    return bool(
        TelemetrySource.objects.filter(pk=source.pk)
        .filter(Q(lock_until__isnull=True) | Q(lock_until__lt=now))
        .update(lock_until=now + limit)
    )


def source_pull(*, source: TelemetrySource, attempt: int = 1, now: datetime | None = None) -> TelemetryPull | None:
    """Pull every enabled mapping of a source from where it stopped to ``now - delay``; record the pull.

    Each chunk is stored in its own transaction and moves the mapping's ``pulled_until`` only once stored, so
    an outage part-way loses nothing: the retry starts from the last stored chunk. A query the server refuses
    (bad PromQL) fails that mapping only; an unreachable or failing server stops the pull and marks it
    retryable. Returns None when another pull of the source is still running.
    """
    now = now or timezone.now()
    if not _claim(source, now):
        return None
    started = time.monotonic()
    pull = TelemetryPull.objects.create(source=source, attempt=attempt, started_at=now)
    tally = _PullTally()
    try:
        client = PrometheusClient(source.base_url, headers=source_headers(source), timeout=source.timeout_seconds)
        step = source.step_seconds
        end = align(now - timedelta(seconds=source.delay_seconds), step)
        for mapping in source.mappings.filter(enabled=True):
            start = (
                mapping.pulled_until + timedelta(seconds=step)
                if mapping.pulled_until
                else align(now - timedelta(hours=source.backfill_hours), step)
            )
            if start > end:
                continue
            tally.window_start = min(filter(None, [tally.window_start, start]))
            tally.window_end = max(filter(None, [tally.window_end, end]))
            query = render_query(mapping.query, step_seconds=step, window=mapping.rate_window)
            try:
                for chunk_start, chunk_end in chunk_windows(start, end, step, max_points_per_query()):
                    tally.requests += 1
                    result = client.query_range(query, start=chunk_start, end=chunk_end, step_seconds=step)
                    for warning in result.warnings:
                        tally.error(f"{mapping.metric}: warning from Prometheus: {warning}")
                    points = mapping_points(mapping, result, tally)
                    with transaction.atomic():
                        stored = points_store(points)
                        MetricMapping.objects.filter(pk=mapping.pk).update(pulled_until=chunk_end)
                    tally.received += len(points)
                    tally.stored += stored.stored
                    tally.series.update((p.metric, p.dims) for p in points)
            except PrometheusError as exc:
                tally.error(f"{mapping.metric}: {exc}")
                if exc.retryable:
                    pull.status, pull.retryable = TelemetryPull.Status.FAILED, True
                    break
                pull.status = TelemetryPull.Status.PARTIAL
    except MissingCredential as exc:
        tally.error(str(exc))
        pull.status = TelemetryPull.Status.FAILED
    except Exception as exc:  # recorded, then re-raised so the worker log has the traceback
        tally.error(f"unexpected {type(exc).__name__}: {exc}")
        pull.status = TelemetryPull.Status.FAILED
        _finish(pull, tally, started)
        raise
    finally:
        TelemetrySource.objects.filter(pk=source.pk).update(lock_until=None, last_pull_at=now)
    if pull.status == TelemetryPull.Status.RUNNING:
        pull.status = TelemetryPull.Status.PARTIAL if tally.errors else TelemetryPull.Status.SUCCEEDED
    _finish(pull, tally, started)
    return pull


def max_points_per_query() -> int:
    from . import prometheus

    return prometheus.MAX_POINTS_PER_QUERY


def _finish(pull: TelemetryPull, tally: _PullTally, started: float) -> None:
    pull.finished_at = timezone.now()
    pull.duration_seconds = round(time.monotonic() - started, 3)
    pull.requests = tally.requests
    pull.points_received = tally.received
    pull.points_stored = tally.stored
    pull.points_skipped = tally.skipped
    pull.series_count = len(tally.series)
    pull.errors = tally.errors
    pull.window_start, pull.window_end = tally.window_start, tally.window_end
    pull.save()


def sources_due(*, now: datetime | None = None) -> list[int]:
    """Enabled sources whose pull interval has elapsed, marked as pulled now (so beat does not queue twice)."""
    now = now or timezone.now()
    due = []
    for source in TelemetrySource.objects.filter(enabled=True).only("pk", "last_pull_at", "pull_interval_seconds"):
        if source.last_pull_at is None or source.last_pull_at + timedelta(seconds=source.pull_interval_seconds) <= now:
            due.append(source.pk)
    TelemetrySource.objects.filter(pk__in=due).update(last_pull_at=now)
    return due


# Retention --------------------------------------------------------------------------------------------------


@dataclass
class PurgeResult:
    points: int
    hourly_rollups: int
    raw_before: datetime
    hourly_before: datetime


@transaction.atomic
def telemetry_purge(*, now: datetime | None = None) -> PurgeResult:
    """Delete raw points past ``TELEMETRY_RAW_RETENTION_DAYS`` and hourly rollups past
    ``TELEMETRY_HOURLY_RETENTION_DAYS``. Cut-offs fall on UTC midnight, so no daily bucket is left half-built."""
    now = now or timezone.now()
    raw_before = floor_to(now - timedelta(days=raw_retention_days()), Rollup.Grain.DAY)
    hourly_before = floor_to(now - timedelta(days=hourly_retention_days()), Rollup.Grain.DAY)
    points, _ = Point.objects.filter(ts__lt=raw_before).delete()
    hourly, _ = Rollup.objects.filter(grain=Rollup.Grain.HOUR, bucket_start__lt=hourly_before).delete()
    state = RetentionState.get()
    state.raw_purged_before = max(filter(None, [state.raw_purged_before, raw_before]))
    state.hourly_purged_before = max(filter(None, [state.hourly_purged_before, hourly_before]))
    state.save()
    return PurgeResult(points, hourly, raw_before, hourly_before)
