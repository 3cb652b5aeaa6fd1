"""Forecast runs: chunked over tasks, recorded with their window and settings, with days to exhaustion and
right-sizing savings checked by hand on series whose forecast is exact (a repeating week)."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from apps.capacity import services
from apps.capacity.models import Forecast, ForecastChunk, ForecastRun
from apps.capacity.selectors import latest_pool_forecasts, run_progress
from apps.capacity.tasks import forecast_chunk_task
from apps.telemetry.models import ServiceUnitSource
from tests.capacity.factories import push
from tests.factories import EnvironmentFactory
from tests.telemetry.factories import CapacityPoolFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 20, 6, tzinfo=UTC)  # a Friday; the history ends on Thursday 19 November
DAYS = [datetime(2026, 11, 19, 12, tzinfo=UTC) - timedelta(days=i) for i in range(90)][::-1]


def weekly_peak(day: datetime) -> float:
    """12 units on Saturdays, 5 otherwise: a week that repeats exactly, so the forecast is exact too."""
    return 12.0 if day.weekday() == 5 else 5.0


@pytest.fixture
def pools():
    prod = EnvironmentFactory(slug="prod")
    tight = CapacityPoolFactory(slug="tight", resource_type="gpu", environment=prod, target_utilisation=Decimal("0.8"))
    roomy = CapacityPoolFactory(
        slug="roomy",
        resource_type="gpu",
        environment=prod,
        target_utilisation=Decimal("0.8"),
        unit_price_per_hour=Decimal("0.50"),
    )
    short = CapacityPoolFactory(slug="short", resource_type="gpu", environment=prod)
    for slug, capacity in (("tight", 10), ("roomy", 40)):
        push("gpu_used", {d: weekly_peak(d) for d in DAYS}, pool=slug, now=NOW)
        push("gpu_provisioned", dict.fromkeys(DAYS, capacity), pool=slug, now=NOW)
    push("gpu_used", dict.fromkeys(DAYS[-20:], 3.0), pool="short", now=NOW)
    return {"tight": tight, "roomy": roomy, "short": short}


def test_a_pool_run_forecasts_each_pool_and_derives_exhaustion_and_savings(pools):
    run = services.forecast_run_create(kind="pool_demand", grain="day", now=NOW, chunk_size=2)
    assert (run.series_total, run.chunks_total, run.status) == (3, 2, ForecastRun.Status.QUEUED)
    assert (run.data_start, run.data_end) == (datetime(2025, 11, 20, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC))
    assert run.settings["horizon"] == 30 and run.settings["level"] == 0.8
    assert run.settings["model_params"]["loss"] == "absolute_error"
    assert "scikit-learn" in run.settings["library_versions"]

    run = services.forecast_run_inline(run)
    assert run.status == ForecastRun.Status.PARTIAL  # the short pool has no forecast, and says why
    assert run_progress(run).percent == 100 and run_progress(run).series_done == 3

    tight = Forecast.objects.get(pool=pools["tight"])
    assert tight.method == "seasonal_naive"  # the premise: the repeating week is forecast exactly
    assert [p[1] for p in tight.points[:7]] == [5, 12, 5, 5, 5, 5, 5]  # Fri 20 Nov .. Thu 26 Nov
    assert tight.points[0][0].startswith("2026-11-20")
    # Capacity 10: the first forecast day whose upper bound reaches it is Saturday 21 November, day 2.
    assert (tight.provisioned, tight.exhaustion_days, tight.exhaustion_date) == (10, 2, date(2026, 11, 21))
    # Backtest: one origin 30 days before the end; the exact forecast covers every actual.
    assert (tight.backtest_origins, tight.backtest_coverage, tight.backtest_mase) == (1, 1.0, 0.0)
    assert (tight.history_start.date(), tight.history_end.date(), tight.observations) == (
        date(2026, 8, 22),
        date(2026, 11, 19),
        90,
    )

    roomy = Forecast.objects.get(pool=pools["roomy"])
    # Peak 12 / target 0.8 = 15 GPUs needed of 40: 25 spare x 0.50 an hour x 730 hours = 9,125 a month.
    assert roomy.exhaustion_days is None
    assert (roomy.peak_demand, roomy.recommended_capacity, roomy.excess_capacity) == (12, 15, 25)
    assert roomy.monthly_saving == Decimal("9125")

    short = Forecast.objects.get(pool=pools["short"])
    assert short.error == "needs 51 days of history for a validated forecast, has 20" and not short.points
    assert set(latest_pool_forecasts(pools.values())) == {pools["tight"].pk, pools["roomy"].pk}


def test_a_service_units_run_forecasts_units_from_the_unit_metric(pools):
    version = ModelVersionFactory(model__slug="ranker", version="1")
    ServiceUnitSource.objects.create(service=version.model.service, metric="request_count", divisor=Decimal("1000"))
    push("request_count", {d: 1000 * weekly_peak(d) for d in DAYS}, model="ranker", environment="prod", now=NOW)
    run = services.forecast_run_inline(services.forecast_run_create(kind="service_units", grain="day", now=NOW))
    assert run.status == ForecastRun.Status.SUCCEEDED
    forecast = Forecast.objects.get(run=run)
    assert forecast.service == version.model.service and forecast.metric == "request_count"
    assert [p[1] for p in forecast.points[:2]] == [5, 12]  # thousands of requests a day
    assert forecast.exhaustion_days is None and forecast.monthly_saving is None


def test_chunks_are_tasks_queued_after_commit_and_run_once(pools, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        runs = services.forecast_runs_start(grain="day")
    pool_run = next(r for r in runs if r.kind == "pool_demand")
    assert len(callbacks) == pool_run.chunks_total + next(r for r in runs if r.kind == "service_units").chunks_total
    chunk = pool_run.chunks.get()
    assert forecast_chunk_task.apply(args=[chunk.pk]).result == ForecastChunk.Status.DONE
    assert forecast_chunk_task.apply(args=[chunk.pk]).result == "already claimed"
    assert Forecast.objects.filter(run=pool_run).count() == 3


def test_a_run_with_nothing_to_forecast_says_so(db):
    run = services.forecast_run_create(kind="pool_demand", grain="hour", now=NOW)
    assert run.status == ForecastRun.Status.FAILED and run.error == "no series with telemetry to forecast"
    assert run.horizon == 168 and run.data_end == NOW
