"""Forecast runs: create a run and its chunks, forecast a chunk (a Celery task each), record what it implies.

A run reads each series' history from telemetry rollups (a pool's demand: its hourly used capacity, or the daily
peak of it at daily grain; a service's units: the sum of its unit metric per day or hour), forecasts the chunk's
series together with ``forecast_many`` (one pooled model per chunk), backtests them the same pooled way
(``backtesting.pooled_backtest``: rolling origin, MASE against seasonal naive and interval coverage), and for
pools derives days to exhaustion and the right-sizing saving. The numbers all come from
``apps.capacity.forecasting``.
"""

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from apps.catalog.models import CapacityPool, Service
from apps.core.exceptions import ApplicationError
from apps.telemetry.metrics import provisioned_metric, used_metric
from apps.telemetry.models import Rollup, ServiceUnitSource

from . import forecasting
from .backtesting import pooled_backtest
from .costs import billing_allocated_cost
from .models import Forecast, ForecastChunk, ForecastRun, Grain
from .selectors import HOURS_PER_MONTH, hourly_means

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

STEP = {Grain.DAY: timedelta(days=1), Grain.HOUR: timedelta(hours=1)}
HORIZON = {Grain.DAY: 30, Grain.HOUR: 7 * 24}  # a month of days; a week of hours
SEASON = {Grain.DAY: 7, Grain.HOUR: 24}  # the library's defaults for these steps
HISTORY_DAYS = {Grain.DAY: 365, Grain.HOUR: 90}
BACKTEST_ORIGINS = {Grain.DAY: 3, Grain.HOUR: 2}
DEFAULT_CHUNK_SIZE = 50


def floor_to(moment: datetime, grain: str) -> datetime:
    moment = moment.astimezone(UTC)
    if grain == Grain.DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def min_observations(grain: str) -> int:
    """History a series needs for one validation origin (the library's rule: horizon + three seasons)."""
    return HORIZON[grain] + 3 * SEASON[grain]


# Creating and dispatching runs --------------------------------------------------------------------------------


def _series_keys(kind: str) -> list[int]:
    if kind == ForecastRun.Kind.POOL_DEMAND:
        pools = CapacityPool.objects.filter(
            Q(resource_type="cpu", pk__in=_pools_with("cpu_used"))
            | Q(resource_type="gpu", pk__in=_pools_with("gpu_used"))
            | Q(resource_type="memory", pk__in=_pools_with("memory_used"))
            | Q(resource_type="nodes", pk__in=_pools_with("nodes_used"))
        )
        return list(pools.order_by("pk").values_list("pk", flat=True))
    return list(
        ServiceUnitSource.objects.filter(enabled=True).order_by("service_id").values_list("service_id", flat=True)
    )


def _pools_with(metric: str):
    from apps.telemetry.models import Series

    return Series.objects.filter(metric=metric, pool__isnull=False).values("pool_id")


def _library_settings() -> dict[str, Any]:
    import pandas as pd
    import sklearn

    from .forecast_lib.engine import GBM_PARAMS, MAX_TRAIN_STEPS

    return {
        "model_params": {**GBM_PARAMS, "max_train_steps": MAX_TRAIN_STEPS},
        "library_versions": {"scikit-learn": sklearn.__version__, "pandas": pd.__version__},
    }


@transaction.atomic
def forecast_run_create(
    *,
    kind: str,
    grain: str,
    requested_by=None,
    now: datetime | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    level: float = forecasting.DEFAULT_LEVEL,
    backtest_origins: int | None = None,
) -> ForecastRun:
    """Record a run over every series of ``kind`` with telemetry, split into chunks of ``chunk_size``.

    The data window ends at the start of the current (incomplete) day or hour and reaches back
    ``HISTORY_DAYS[grain]``.
    """
    if kind not in ForecastRun.Kind.values or grain not in Grain.values:
        raise ApplicationError(f"unknown forecast kind {kind!r} or grain {grain!r}")
    if chunk_size < 1:
        raise ApplicationError("chunk_size must be at least 1")
    now = now or timezone.now()
    data_end = floor_to(now, grain)
    data_start = floor_to(data_end - timedelta(days=HISTORY_DAYS[grain]), Grain.DAY)
    keys = _series_keys(kind)
    origins = backtest_origins if backtest_origins is not None else BACKTEST_ORIGINS[grain]
    run = ForecastRun.objects.create(
        kind=kind,
        grain=grain,
        requested_by=requested_by,
        data_start=data_start,
        data_end=data_end,
        horizon=HORIZON[grain],
        level=level,
        backtest_origins=origins,
        chunk_size=chunk_size,
        series_total=len(keys),
        chunks_total=math.ceil(len(keys) / chunk_size),
        settings={
            "horizon": HORIZON[grain],
            "season": SEASON[grain],
            "level": level,
            "backtest_origins": origins,
            "history_days": HISTORY_DAYS[grain],
            "min_observations": min_observations(grain),
            "series": (
                ("daily peak of hourly used capacity" if grain == Grain.DAY else "hourly used capacity")
                if kind == ForecastRun.Kind.POOL_DEMAND
                else f"units per {grain} from each service's unit source"
            ),
            **_library_settings(),
        },
    )
    ForecastChunk.objects.bulk_create(
        [
            ForecastChunk(run=run, index=i, keys=keys[start : start + chunk_size])
            for i, start in enumerate(range(0, len(keys), chunk_size))
        ]
    )
    if not keys:
        run.status, run.finished_at, run.error = ForecastRun.Status.FAILED, now, "no series with telemetry to forecast"
        run.save(update_fields=["status", "finished_at", "error", "updated_at"])
    return run


def forecast_runs_start(*, grain: str = Grain.DAY, requested_by=None) -> list[ForecastRun]:
    """Create a pool-demand and a service-units run and queue their chunks once the transaction commits."""
    from .tasks import forecast_chunk_task

    runs = []
    with transaction.atomic():
        for kind in ForecastRun.Kind.values:
            run = forecast_run_create(kind=kind, grain=grain, requested_by=requested_by)
            for chunk_id in run.chunks.values_list("pk", flat=True):
                forecast_chunk_task.delay_on_commit(chunk_id)
            runs.append(run)
    return runs


def forecast_run_inline(run: ForecastRun) -> ForecastRun:
    """Run every chunk of ``run`` in this process (the demo, tests and the command line: no worker needed)."""
    for chunk_id in run.chunks.values_list("pk", flat=True):
        forecast_chunk_execute(chunk_id=chunk_id)
    run.refresh_from_db()
    return run


# Forecasting a chunk ----------------------------------------------------------------------------------------


@dataclass
class _History:
    series: "pd.Series"
    provisioned: float | None = None  # pools: capacity at the end of the history


def _pool_histories(run: ForecastRun, keys: list[int]) -> dict[int, _History]:
    import pandas as pd

    pools = CapacityPool.objects.in_bulk(keys)
    metrics = {m for p in pools.values() for m in (used_metric(p.resource_type), provisioned_metric(p.resource_type))}
    means = hourly_means(pools, metrics, run.data_start, run.data_end)
    histories = {}
    for pool_id, pool in pools.items():
        used = means.get((pool_id, used_metric(pool.resource_type)), {})
        provisioned = means.get((pool_id, provisioned_metric(pool.resource_type)), {})
        if not used:
            continue
        series = pd.Series(used, dtype="float64").sort_index()
        series.index = pd.DatetimeIndex(series.index).tz_convert("UTC")
        if run.grain == Grain.DAY:
            series = series.groupby(series.index.floor("D")).max()
        last_provisioned = provisioned[max(provisioned)] if provisioned else None
        histories[pool_id] = _History(series, last_provisioned)
    return histories


def _service_histories(run: ForecastRun, sources: dict[int, ServiceUnitSource]) -> dict[int, _History]:
    import pandas as pd

    match = Q(pk__in=[])
    for source in sources.values():
        q = Q(series__metric=source.metric, series__service_id=source.service_id)
        if source.environment_id:
            q &= Q(series__environment_id=source.environment_id)
        match |= q
    totals = (
        Rollup.objects.filter(match, grain=run.grain, bucket_start__gte=run.data_start, bucket_start__lt=run.data_end)
        .values("series__service_id", "bucket_start")
        .annotate(total=Sum("sum"))
        .order_by("bucket_start")
    )
    values: dict[int, dict] = {}
    for row in totals:
        service_id = row["series__service_id"]
        values.setdefault(service_id, {})[row["bucket_start"]] = row["total"] / float(sources[service_id].divisor)
    histories = {}
    for service_id, per_bucket in values.items():
        series = pd.Series(per_bucket, dtype="float64")
        series.index = pd.DatetimeIndex(series.index).tz_convert("UTC")
        histories[service_id] = _History(series)
    return histories


def _observations(series: "pd.Series", grain: str) -> int:
    """Steps the history spans once regularised (gaps are filled by the library)."""
    return int((series.index[-1] - series.index[0]) / STEP[grain]) + 1


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _forecast_row(run: ForecastRun, fc: forecasting.Forecast, bt: forecasting.BacktestResult | None) -> Forecast:
    row = Forecast(
        run=run,
        grain=run.grain,
        method=fc.settings.method,
        history_start=fc.settings.history_start,
        history_end=fc.settings.history_end,
        observations=fc.settings.observations,
        settings=_json_safe(fc.settings.as_dict()),
        points=[
            [ts.isoformat(), round(p, 6), round(lo, 6), round(hi, 6)]
            for ts, p, lo, hi in zip(fc.timestamps, fc.point, fc.lower, fc.upper, strict=True)
        ],
    )
    if bt is None:
        row.settings["backtest"] = "history too short for a backtest origin"
    else:
        row.backtest_mase = _finite(bt.mase_model)
        row.backtest_mase_naive = _finite(bt.mase_naive)
        row.backtest_ratio = _finite(bt.ratio)
        row.backtest_coverage = _finite(bt.coverage)
        row.backtest_width = _finite(bt.mean_width)
        row.backtest_origins = len(bt.origins)
        row.settings["backtest_methods"] = [o.method for o in bt.origins]
    return row


def _capacity_implications(row: Forecast, pool: CapacityPool, fc: forecasting.Forecast, provisioned: float) -> None:
    """Days to exhaustion and the right-sizing saving of a pool's demand forecast (KPIS.md section 2)."""
    row.provisioned = provisioned
    days = forecasting.days_to_exhaustion(fc, provisioned)
    row.exhaustion_days = days
    row.exhaustion_date = (fc.settings.history_end + timedelta(days=days)).date() if days is not None else None
    target = float(pool.target_utilisation)
    end = fc.settings.history_end
    billed = billing_allocated_cost(pool, end - timedelta(days=30), end)
    if billed is not None:  # billing-allocated cost, scaled from 30 days (720 h) to a 730-hour month
        sizing = forecasting.right_sizing(
            fc,
            provisioned=provisioned,
            target_utilisation=target,
            period_cost=billed * HOURS_PER_MONTH / Decimal(720),
        )
    else:
        sizing = forecasting.right_sizing(
            fc,
            provisioned=provisioned,
            target_utilisation=target,
            unit_price=pool.unit_price_per_hour,
            hours=HOURS_PER_MONTH,
        )
    row.peak_demand = sizing.peak_demand
    row.recommended_capacity = sizing.recommended_capacity
    row.excess_capacity = sizing.excess_capacity
    row.monthly_saving = sizing.saving


def _claim(chunk_id: int, now: datetime, task_id: str = "") -> ForecastChunk | None:
    # A chunk left running past the task time limit belongs to a worker that died: take it over. So does the same
    # task delivered again: with late acknowledgement the broker only re-delivers a task whose worker was lost.
    stale = now - timedelta(seconds=getattr(django_settings, "CELERY_TASK_TIME_LIMIT", 1800))
    running = Q(status=ForecastChunk.Status.RUNNING, started_at__lt=stale)
    if task_id:
        running |= Q(status=ForecastChunk.Status.RUNNING, claimed_by=task_id)
    claimed = ForecastChunk.objects.filter(Q(status=ForecastChunk.Status.QUEUED) | running, pk=chunk_id).update(
        status=ForecastChunk.Status.RUNNING, started_at=now, claimed_by=task_id
    )
    if not claimed:
        return None
    chunk = ForecastChunk.objects.select_related("run").get(pk=chunk_id)
    ForecastRun.objects.filter(pk=chunk.run_id, status=ForecastRun.Status.QUEUED).update(
        status=ForecastRun.Status.RUNNING, started_at=now
    )
    return chunk


def forecast_chunk_execute(*, chunk_id: int, now: datetime | None = None, task_id: str = "") -> ForecastChunk | None:
    """Forecast one chunk's series and store a Forecast row per series. Idempotent: a chunk runs once.

    ``task_id`` is the Celery task's id: a re-delivery of the task whose worker died takes the chunk over.
    """
    chunk = _claim(chunk_id, now or timezone.now(), task_id)
    if chunk is None:
        return None
    run = chunk.run
    try:
        from threadpoolctl import threadpool_limits

        # Parallelism comes from chunks spread over workers. OpenMP threads inside a chunk would compete with
        # the other workers for the same cores (and spin while they wait), so each chunk uses one thread.
        with threadpool_limits(limits=1):
            rows = _forecast_chunk(run, chunk.keys)
        with transaction.atomic():
            # Writers of the same chunk (a take-over racing a slow original) replace its rows one after the other.
            ForecastChunk.objects.select_for_update().filter(pk=chunk.pk).first()
            Forecast.objects.filter(run=run, **{f"{_subject(run)}_id__in": chunk.keys}).delete()
            Forecast.objects.bulk_create(rows)
            chunk.status, chunk.series_count = ForecastChunk.Status.DONE, len(rows)
    except Exception as exc:  # recorded on the chunk; the run carries on with its other chunks
        logger.exception("forecast chunk %s of run %s failed", chunk.pk, run.pk)
        chunk.status, chunk.error = ForecastChunk.Status.FAILED, f"{type(exc).__name__}: {exc}"
    chunk.finished_at = timezone.now()
    chunk.save(update_fields=["status", "series_count", "error", "finished_at"])
    _finish_run_if_done(run.pk)
    return chunk


def _subject(run: ForecastRun) -> str:
    return "pool" if run.kind == ForecastRun.Kind.POOL_DEMAND else "service"


def _forecast_chunk(run: ForecastRun, keys: list[int]) -> list[Forecast]:
    pools = run.kind == ForecastRun.Kind.POOL_DEMAND
    if pools:
        subjects = CapacityPool.objects.in_bulk(keys)
        histories = _pool_histories(run, keys)
        metrics = {k: used_metric(p.resource_type) for k, p in subjects.items()}
    else:
        subjects = Service.objects.in_bulk(keys)
        sources = {s.service_id: s for s in ServiceUnitSource.objects.filter(service_id__in=keys, enabled=True)}
        histories = _service_histories(run, sources)
        metrics = {k: s.metric for k, s in sources.items()}
    rows: list[Forecast] = []
    needed = min_observations(run.grain)
    ready = {}
    for key in keys:
        if key not in subjects or key not in metrics:
            continue
        history = histories.get(key)
        observed = _observations(history.series, run.grain) if history else 0
        if observed < needed:
            unit = "days" if run.grain == Grain.DAY else "hours"
            rows.append(
                Forecast(
                    run=run,
                    grain=run.grain,
                    metric=metrics[key],
                    observations=observed,
                    error=f"needs {needed} {unit} of history for a validated forecast, has {observed}",
                    **{_subject(run): subjects[key]},
                )
            )
        else:
            ready[key] = history
    if ready:
        histories = {k: h.series for k, h in ready.items()}
        results = forecasting.forecast_many(histories, horizon=run.horizon, level=run.level)
        backtests = pooled_backtest(histories, horizon=run.horizon, origins=run.backtest_origins, level=run.level)
        for key, fc in results.items():
            row = _forecast_row(run, fc, backtests[key])
            row.metric = metrics[key]
            setattr(row, _subject(run), subjects[key])
            if pools and ready[key].provisioned:
                _capacity_implications(row, subjects[key], fc, ready[key].provisioned)
            rows.append(row)
    return rows


def _finish_run_if_done(run_id: int) -> None:
    counts = ForecastChunk.objects.filter(run_id=run_id).aggregate(
        total=Count("pk"),
        done=Count("pk", filter=Q(status=ForecastChunk.Status.DONE)),
        failed=Count("pk", filter=Q(status=ForecastChunk.Status.FAILED)),
    )
    if counts["done"] + counts["failed"] < counts["total"]:
        return
    series_errors = Forecast.objects.filter(run_id=run_id).exclude(error="").count()
    if counts["done"] == 0:
        status = ForecastRun.Status.FAILED
    elif counts["failed"] or series_errors:
        status = ForecastRun.Status.PARTIAL
    else:
        status = ForecastRun.Status.SUCCEEDED
    errors = list(
        ForecastChunk.objects.filter(run_id=run_id, status=ForecastChunk.Status.FAILED).values_list("error", flat=True)
    )
    ForecastRun.objects.filter(pk=run_id, status__in=[ForecastRun.Status.QUEUED, ForecastRun.Status.RUNNING]).update(
        status=status,
        finished_at=timezone.now(),
        error="; ".join(e for e in errors if e)[:2000]
        or (f"{series_errors} series without a forecast" if series_errors else ""),
    )
