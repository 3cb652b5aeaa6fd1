"""A worker's pool process killed (SIGKILL, as the OOM killer does) in the middle of a capacity forecast chunk and
of an alert evaluation. Late acknowledgement puts the task back on the queue; when it runs again the forecast run
completes once, with one forecast per pool and the right status, and the evaluation opens one alert with one
notification. Real worker, real broker (the configured one) and the test database; enough data that each task
is still running when it is killed.
"""

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from apps.alerts.models import Alert, AlertRule, AuditEntry, EvaluatorState, Notification
from apps.alerts.tasks import evaluate_rules_task
from apps.capacity import services as capacity
from apps.capacity.models import Forecast, ForecastChunk, ForecastRun
from apps.capacity.tasks import forecast_chunk_task
from tests.alerts.conftest import hour, latency
from tests.alerts.factories import ChannelFactory, RuleFactory
from tests.capacity.factories import push
from tests.factories import EnvironmentFactory
from tests.telemetry.factories import CapacityPoolFactory, ModelVersionFactory
from tests.utils import child_env, current_database_url

from .procs import Worker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

NOW = datetime(2026, 11, 20, 6, tzinfo=UTC)
DAYS = [datetime(2026, 11, 19, 12, tzinfo=UTC) - timedelta(days=i) for i in range(120)][::-1]
POOLS = 12
CHUNK_SIZE = 6  # two chunks: the first is killed, the second runs normally
QUIET_RULES = 1500  # rules that never breach: they make one evaluation last long enough to be caught


@pytest.fixture
def worker():
    with Worker(env=child_env(DATABASE_URL=current_database_url())) as w:
        yield w


def writer_active() -> bool:
    """Another process is inside a write transaction on the test database (the worker's task)."""
    if connection.vendor == "sqlite":
        probe = sqlite3.connect(connection.settings_dict["NAME"], timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.rollback()
            return False
        except sqlite3.OperationalError:  # "database is locked": the worker holds the write lock
            return True
        finally:
            probe.close()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
        )
        return cursor.fetchone()[0] > 0


# --- Capacity forecast -----------------------------------------------------------------------------------------


@pytest.fixture
def pools():
    prod = EnvironmentFactory(slug="prod")
    made = []
    for i in range(POOLS):
        pool = CapacityPoolFactory(slug=f"pool-{i:02d}", resource_type="gpu", environment=prod)
        # A weekly cycle with a trend, different per pool, so every series is a real forecast.
        push(
            "gpu_used",
            {d: 4 + i + 0.02 * n + (3 if d.weekday() >= 5 else 0) for n, d in enumerate(DAYS)},
            pool=pool.slug,
            now=NOW,
        )
        push("gpu_provisioned", dict.fromkeys(DAYS, 40.0 + i), pool=pool.slug, now=NOW)
        made.append(pool)
    return made


def test_a_forecast_chunk_killed_mid_run_is_taken_over_and_the_run_completes_once(worker, pools):
    run = capacity.forecast_run_create(kind="pool_demand", grain="day", now=NOW, chunk_size=CHUNK_SIZE)
    first, second = run.chunks.order_by("index")
    worker.wait_ready()
    killed = forecast_chunk_task.apply_async(args=[first.pk], queue=worker.queue)

    def computing():
        first.refresh_from_db()
        return first.status == ForecastChunk.Status.RUNNING

    wait_for(computing, timeout=60, what="the first chunk to start", watch=(worker,))
    worker.kill_pool_child()

    first.refresh_from_db()
    assert first.status == ForecastChunk.Status.RUNNING, "the chunk finished before the worker was killed"
    assert not Forecast.objects.filter(run=run).exists()
    forecast_chunk_task.apply_async(args=[second.pk], queue=worker.queue)

    def finished():
        run.refresh_from_db()
        return not run.is_active

    wait_for(finished, timeout=120, what="the run to finish after the redelivery", watch=(worker,))
    assert "WorkerLostError" in worker.log()
    assert worker.outcomes(killed.id) == ["succeeded"]  # the redelivered task did the work, once

    run.refresh_from_db()
    assert (run.status, run.error) == (ForecastRun.Status.SUCCEEDED, "")
    assert list(run.chunks.values_list("status", "series_count")) == [("done", CHUNK_SIZE), ("done", CHUNK_SIZE)]
    forecasts = Forecast.objects.filter(run=run)
    assert forecasts.count() == POOLS
    assert sorted(forecasts.values_list("pool_id", flat=True)) == sorted(p.pk for p in pools)
    assert not forecasts.exclude(error="").exists()
    assert all(len(f.points) == run.horizon for f in forecasts)


# --- Alert evaluation ------------------------------------------------------------------------------------------


@pytest.fixture
def alerting():
    """One rule that breaches (and fires at once), behind many that never do."""
    EnvironmentFactory(slug="prod", name="Production", kind="prod")
    version = ModelVersionFactory(model__slug="ranker", model__name="Ranker", version="2.1.0", stage="production")
    latency(hour(0), [600, 610, 620, 630])
    breaching = RuleFactory(model=version.model, consecutive_breaches=1, channels=[ChannelFactory()])
    AlertRule.objects.bulk_create(
        AlertRule(
            name=f"Quiet {i}",
            metric=AlertRule.Metric.LATENCY_P95,
            comparison=AlertRule.Comparison.GT,
            threshold=Decimal(10_000 + i),
            window_minutes=60,
            consecutive_breaches=1,
            severity=AlertRule.Severity.WARNING,
            model=version.model,
            group_by=["model", "version", "environment"],
            owner_user=breaching.owner_user,
        )
        for i in range(QUIET_RULES)
    )
    return breaching


def test_an_alert_evaluation_killed_mid_run_gives_one_alert_and_one_notification(worker, alerting):
    worker.wait_ready()
    at = hour(1)
    task = evaluate_rules_task.apply_async(kwargs={"at": at.isoformat()}, queue=worker.queue)

    wait_for(writer_active, timeout=60, what="the evaluation to be inside its transaction", watch=(worker,))
    worker.kill_pool_child()

    # Nothing of the killed evaluation remains: not the alert, not even the claim of its minute.
    assert not Alert.objects.exists(), "the evaluation finished before the worker was killed"
    assert EvaluatorState.get().last_slot is None

    wait_for(lambda: worker.outcomes(task.id), timeout=120, what="the redelivered evaluation", watch=(worker,))
    assert "WorkerLostError" in worker.log()
    assert worker.outcomes(task.id) == ["succeeded"]

    # Delivered once more (a duplicate message): the minute is already evaluated, nothing changes.
    again = evaluate_rules_task.apply_async(kwargs={"at": at.isoformat()}, queue=worker.queue)
    wait_for(lambda: worker.outcomes(again.id), timeout=60, what="the duplicate evaluation", watch=(worker,))
    assert "'evaluated': False" in worker.log().split(again.id)[-1]

    alert = Alert.objects.get()
    assert (alert.rule, alert.state, alert.fired_at) == (alerting, "firing", at)
    assert list(AuditEntry.objects.filter(alert=alert).order_by("pk").values_list("action", flat=True)) == [
        "pending",
        "firing",
    ]
    notification = Notification.objects.get()
    assert list(notification.alerts.all()) == [alert]
    assert EvaluatorState.get().last_slot == at
