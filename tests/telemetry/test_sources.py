"""Source configuration and scheduling: presets, due sources, one pull at a time, chunk arithmetic, schedules."""

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.telemetry.models import MetricMapping, TelemetrySource
from apps.telemetry.presets import PRESETS
from apps.telemetry.prometheus import chunk_windows, render_query, to_datetime
from apps.telemetry.services import source_apply_preset, source_pull, sources_due
from tests.telemetry.factories import TelemetrySourceFactory

pytestmark = pytest.mark.django_db


def test_a_preset_creates_its_mappings_once_with_the_labels_that_identify_the_catalog():
    source = TelemetrySourceFactory(preset=TelemetrySource.Preset.TRITON)
    created = source_apply_preset(source=source)
    assert sorted(m.metric for m in created) == ["error_count", "latency_ms", "request_count"]
    latency = MetricMapping.objects.get(source=source, metric="latency_ms")
    assert (latency.model_label, latency.version_label) == ("model", "version")
    assert "nv_inference_request_duration_us" in latency.query
    assert source_apply_preset(source=source) == []  # metrics already mapped are left alone
    assert set(PRESETS) == set(TelemetrySource.Preset.values)


def test_a_query_template_keeps_label_matchers_and_fills_step_and_window():
    query = render_query('increase(x{code!~"2.."}[{step}]) / rate(y[{window}])', step_seconds=60, window="5m")
    assert query == 'increase(x{code!~"2.."}[60s]) / rate(y[5m])'


def test_windows_stay_under_the_prometheus_point_limit_without_gaps_or_overlaps():
    start = datetime(2026, 10, 1, tzinfo=UTC)
    end = start + timedelta(days=30)  # 43,201 one-minute steps
    windows = list(chunk_windows(start, end, 60))
    steps = [int((b - a).total_seconds() // 60) + 1 for a, b in windows]
    assert steps == [10_000, 10_000, 10_000, 10_000, 3_201]
    assert windows[0][0] == start and windows[-1][1] == end
    assert all(b + timedelta(minutes=1) == c for (_, b), (c, _) in pairwise(windows))


def test_prometheus_timestamps_become_exact_utc_datetimes():
    assert to_datetime(1732693814.783) == datetime(2024, 11, 27, 7, 50, 14, 783000, tzinfo=UTC)
    assert to_datetime("1732693814") == datetime(2024, 11, 27, 7, 50, 14, tzinfo=UTC)


def test_due_sources_are_those_whose_interval_has_passed_and_are_marked():
    now = timezone.now()
    never = TelemetrySourceFactory()
    recent = TelemetrySourceFactory(last_pull_at=now - timedelta(seconds=100), pull_interval_seconds=300)
    stale = TelemetrySourceFactory(last_pull_at=now - timedelta(seconds=400), pull_interval_seconds=300)
    TelemetrySourceFactory(enabled=False)
    assert sorted(sources_due(now=now)) == sorted([never.pk, stale.pk])
    assert sources_due(now=now) == []  # just marked: not queued twice
    recent.refresh_from_db()
    assert recent.last_pull_at == now - timedelta(seconds=100)


def test_a_source_being_pulled_is_not_pulled_again_meanwhile():
    source = TelemetrySourceFactory(lock_until=timezone.now() + timedelta(minutes=5))
    assert source_pull(source=source) is None
    source.lock_until = timezone.now() - timedelta(seconds=1)  # a crashed pull's lock expires
    source.save()
    assert source_pull(source=source) is not None


def test_the_schedules_exist_after_migrate():
    tasks = dict(PeriodicTask.objects.values_list("name", "task"))
    assert tasks["Telemetry: pull due Prometheus sources"] == "telemetry.pull_due_sources"
    assert tasks["Telemetry: purge raw points past retention"] == "telemetry.purge"
    assert tasks["Capacity: daily-grain forecasts"] == "capacity.forecast_scheduled"
    assert PeriodicTask.objects.get(task="telemetry.pull_due_sources").queue == "telemetry"
