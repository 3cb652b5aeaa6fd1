"""Hourly and daily rollups: counts, sums, extremes and latency percentiles, checked against hand-computed values."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from apps.telemetry.models import Point, RetentionState, Rollup, ServiceUnitSource
from apps.telemetry.selectors import SeriesScope, series_rollups, service_units
from apps.telemetry.services import PushRejected, telemetry_purge, telemetry_push
from tests.factories import EnvironmentFactory
from tests.telemetry.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)


@pytest.fixture
def version():
    EnvironmentFactory(slug="prod")
    EnvironmentFactory(slug="uat", name="UAT", kind="uat")
    return ModelVersionFactory(model__slug="m", version="1")


def _latency(minute_values: dict[timedelta, float], **extra) -> list[dict]:
    return [
        {
            "metric": "latency_ms",
            "model": "m",
            "version": "1",
            "environment": "prod",
            "timestamp": (T0 + offset).isoformat(),
            "value": v,
            **extra,
        }
        for offset, v in minute_values.items()
    ]


def test_latency_rollups_keep_count_sum_extremes_and_percentiles(version):
    minutes = [timedelta(minutes=m) for m in (0, 10, 20, 30, 40)]
    telemetry_push(points=_latency(dict(zip(minutes, [30, 10, 100, 20, 40], strict=True))))
    hour = Rollup.objects.get(grain="hour", bucket_start=T0)
    # Sorted 10, 20, 30, 40, 100. p95: rank 0.95 * 4 = 3.8 -> 40 + 0.8 * (100 - 40) = 88; p99: 40 + 0.96 * 60.
    assert (hour.count, hour.sum, hour.min, hour.max) == (5, 200, 10, 100)
    assert hour.p50 == 30 and hour.p95 == pytest.approx(88) and hour.p99 == pytest.approx(97.6)
    assert hour.mean == 40

    # A point in the next hour: the day now has six samples; its percentiles come from the raw points.
    telemetry_push(points=_latency({timedelta(hours=1, minutes=5): 50}))
    day = Rollup.objects.get(grain="day", bucket_start=datetime(2026, 11, 2, tzinfo=UTC))
    # Sorted 10, 20, 30, 40, 50, 100: p50 at rank 2.5 -> 35; p95 at rank 4.75 -> 50 + 0.75 * 50 = 87.5.
    assert (day.count, day.sum, day.p50, day.p95) == (6, 250, 35, pytest.approx(87.5))
    assert Rollup.objects.filter(grain="hour").count() == 2
    # The first hour was not touched by the second batch and still says the same.
    assert Rollup.objects.get(grain="hour", bucket_start=T0).count == 5


def test_counter_rollups_add_up_and_have_no_percentiles(version):
    points = [
        {
            "metric": "request_count",
            "model": "m",
            "environment": "prod",
            "timestamp": (T0 + timedelta(minutes=m)).isoformat(),
            "value": v,
        }
        for m, v in [(0, 100), (15, 250), (30, 50), (45, 400)]
    ]
    telemetry_push(points=points)
    hour = Rollup.objects.get(grain="hour")
    assert (hour.sum, hour.count, hour.min, hour.max, hour.p95) == (800, 4, 50, 400, None)


def test_series_rollups_reads_one_metric_within_a_scope(version):
    prod = EnvironmentFactory(slug="prod")
    telemetry_push(points=_latency({timedelta(0): 10}) + _latency({timedelta(0): 99}, environment="uat"))
    rows = list(
        series_rollups(
            metric="latency_ms",
            scope=SeriesScope(model=version.model, environment=prod),
            start=T0,
            end=T0 + timedelta(hours=1),
        )
    )
    assert [(r.series.environment.slug, r.max) for r in rows] == [("prod", 10)]
    both = series_rollups(metric="latency_ms", start=date(2026, 11, 2), end=date(2026, 11, 3), grain="day")
    assert sorted(r.max for r in both) == [10, 99]
    assert not series_rollups(metric="request_count", start=T0, end=T0 + timedelta(hours=1)).exists()


def test_service_units_come_from_the_configured_metric_and_environment(version):
    service = version.model.service
    assert service_units(service, date(2026, 11, 1), date(2026, 12, 1)) is None  # no unit source
    ServiceUnitSource.objects.create(
        service=service, metric="request_count", environment=EnvironmentFactory(slug="prod"), divisor=Decimal("1000")
    )
    assert service_units(service, date(2026, 11, 1), date(2026, 12, 1)) is None  # no telemetry yet
    points = [
        {
            "metric": "request_count",
            "model": "m",
            "version": "1",
            "environment": "prod",
            "timestamp": "2026-11-02T10:00:00Z",
            "value": 1200,
        },
        {
            "metric": "request_count",
            "model": "m",
            "environment": "prod",
            "timestamp": "2026-11-20T23:30:00Z",
            "value": 800,
        },
        {
            "metric": "request_count",
            "model": "m",
            "environment": "uat",
            "timestamp": "2026-11-02T10:00:00Z",
            "value": 5000,
        },
        {
            "metric": "request_count",
            "model": "m",
            "environment": "prod",
            "timestamp": "2026-12-01T00:00:00Z",
            "value": 7000,
        },
    ]
    telemetry_push(points=points, now=datetime(2026, 12, 2, tzinfo=UTC))
    # (1200 + 800) / 1000, production only, November only.
    assert service_units(service, date(2026, 11, 1), date(2026, 12, 1)) == Decimal("2")
    # Not day-aligned: read from hourly rollups, so the 23:30 point is cut off by a 23:00 end.
    end = datetime(2026, 11, 20, 23, tzinfo=UTC)
    assert service_units(service, datetime(2026, 11, 1, tzinfo=UTC), end) == Decimal("1.2")


def test_purge_drops_raw_points_past_retention_but_keeps_rollups_and_refuses_older_points(version, settings):
    settings.TELEMETRY_RAW_RETENTION_DAYS = 10
    telemetry_push(points=_latency({timedelta(0): 10, timedelta(days=20): 20}), now=T0 + timedelta(days=21))
    result = telemetry_purge(now=T0 + timedelta(days=21, hours=5))
    # Cut-off: 21 days + 5 h - 10 days after T0 = 11 days 5 h after T0, floored to midnight.
    assert result.raw_before == datetime(2026, 11, 13, tzinfo=UTC)
    assert result.points == 1
    assert list(Point.objects.values_list("value", flat=True)) == [20]
    assert Rollup.objects.filter(bucket_start__lt=datetime(2026, 11, 3, tzinfo=UTC)).count() == 2  # hour and day
    assert RetentionState.get().raw_purged_before == result.raw_before
    with pytest.raises(PushRejected) as refused:
        telemetry_push(points=_latency({timedelta(minutes=1): 11}), now=T0 + timedelta(days=21))
    assert "purged" in refused.value.errors[0].message
