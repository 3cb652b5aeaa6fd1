"""Demo forecasts: once the telemetry demo has pushed 90 days of capacity and units, run the daily-grain forecasts
for every pool and measured service, in this process, through the same chunk function the Celery tasks call
(no worker needs to be running while the demo loads)."""

import time

from .models import ForecastRun, Grain
from .services import forecast_run_create, forecast_run_inline


def load(*, log) -> None:
    for kind in ForecastRun.Kind.values:
        started = time.monotonic()
        run = forecast_run_inline(forecast_run_create(kind=kind, grain=Grain.DAY))
        kind_label, status = run.get_kind_display().lower(), run.get_status_display().lower()
        log(f"forecasts: {kind_label}, {run.series_total} series, {status} in {time.monotonic() - started:.1f}s")
