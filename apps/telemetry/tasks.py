"""Celery adapters: ids in, a service call, the retry decision."""

from celery import shared_task

from apps.core.queues import Queues

from . import services
from .models import TelemetryPull, TelemetrySource

MAX_BACKOFF_SECONDS = 3600


class PullFailed(Exception):
    """A pull could not reach its source; raised when the retries are used up."""


@shared_task(bind=True, queue=Queues.TELEMETRY, name="telemetry.pull_source", max_retries=None, ignore_result=True)
def pull_source_task(self, source_id: int) -> str:
    """Pull one source; retry with exponential backoff while Prometheus is down or failing."""
    source = TelemetrySource.objects.filter(pk=source_id, enabled=True).first()
    if source is None:
        return "source missing or disabled"
    pull = services.source_pull(source=source, attempt=self.request.retries + 1)
    if pull is None:
        return "another pull of this source is running"
    if pull.status == TelemetryPull.Status.FAILED and pull.retryable:
        error = PullFailed(f"pull {pull.pk} of '{source.name}' failed: {'; '.join(pull.errors)[:500]}")
        if self.request.retries >= source.max_retries:
            raise error
        countdown = min(source.retry_backoff_seconds * 2**self.request.retries, MAX_BACKOFF_SECONDS)
        raise self.retry(exc=error, countdown=countdown)
    return pull.status


@shared_task(queue=Queues.TELEMETRY, name="telemetry.pull_due_sources", ignore_result=True)
def pull_due_sources_task() -> list[int]:
    """Beat: queue a pull of each enabled source whose interval has elapsed."""
    due = services.sources_due()
    for source_id in due:
        pull_source_task.delay_on_commit(source_id)
    return due


@shared_task(queue=Queues.TELEMETRY, name="telemetry.purge", ignore_result=True)
def purge_task() -> dict:
    """Beat: delete raw points and hourly rollups past their retention."""
    result = services.telemetry_purge()
    return {"points": result.points, "hourly_rollups": result.hourly_rollups}
