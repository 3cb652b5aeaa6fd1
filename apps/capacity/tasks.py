"""Celery adapters for forecasting: each chunk of a run is its own task on the forecasts queue."""

from celery import shared_task

from apps.core.queues import Queues

from . import services
from .models import Grain


@shared_task(bind=True, queue=Queues.FORECASTS, name="capacity.forecast_chunk", ignore_result=True)
def forecast_chunk_task(self, chunk_id: int) -> str:
    """Forecast one chunk of a run; a chunk claimed by another task is skipped, while this task delivered again
    after its worker died takes its chunk over."""
    chunk = services.forecast_chunk_execute(chunk_id=chunk_id, task_id=self.request.id or "")
    return chunk.status if chunk else "already claimed"


@shared_task(queue=Queues.FORECASTS, name="capacity.forecast_scheduled", ignore_result=True)
def forecast_scheduled_task(grain: str = Grain.DAY) -> list[int]:
    """Beat: forecast every pool's demand and every measured service's units at ``grain``."""
    return [run.pk for run in services.forecast_runs_start(grain=grain)]


@shared_task(queue=Queues.FORECASTS, name="capacity.forecast_scheduled_hourly", ignore_result=True)
def forecast_scheduled_hourly_task() -> list[int]:
    """Beat: the same at hourly grain (a week ahead, for pools whose daily cycle matters)."""
    return [run.pk for run in services.forecast_runs_start(grain=Grain.HOUR)]
