import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.core.queues import Queues

from . import services
from .models import BillingSource

logger = logging.getLogger(__name__)

# Seconds before each retry of an import that lost its database connection (a restart or fail-over):
# about a minute in all, then the import is recorded as failed with the database's error.
DATABASE_RETRY_COUNTDOWNS = [1, 2, 4, 8, 16, 32]


def _retrying(task, run, give_up, what: str):
    """Run ``run()``; a lost database connection (a restart or fail-over) is retried with backoff, about a
    minute in all, then ``give_up(error)`` records it and the error propagates. An interrupted attempt leaves
    nothing behind (its transactions roll back); the worker opens a fresh connection for the next one."""
    try:
        return run()
    except (OperationalError, InterfaceError) as exc:
        retries = task.request.retries
        if retries >= task.max_retries:
            give_up(f"the database connection was lost {retries + 1} times during the {what}; last error: {exc}")
            raise
        logger.warning("%s lost its database connection (%s); retrying", what, exc)
        raise task.retry(exc=exc, countdown=DATABASE_RETRY_COUNTDOWNS[retries]) from None


@shared_task(bind=True, queue=Queues.BILLING, name="billing.import_file", max_retries=len(DATABASE_RETRY_COUNTDOWNS))
def billing_import_task(self, import_id: int) -> str | None:
    """Import one stored file. Idempotent: a finished import is skipped; a retried one starts afresh."""
    billing_import = _retrying(
        self,
        lambda: services.billing_import_execute(import_id=import_id),
        lambda error: services.billing_import_give_up(import_id=import_id, error=error),
        f"import {import_id}",
    )
    return billing_import.status if billing_import else None


@shared_task(bind=True, queue=Queues.BILLING, name="billing.pull_source", max_retries=4)
def billing_pull_source_task(self, source_id: int) -> int:
    source = BillingSource.objects.get(pk=source_id)
    try:
        queued = services.billing_source_pull(source=source)
    except services.SourceUnavailable as exc:
        services.billing_source_record_pull(source=source, error=str(exc))
        logger.warning("billing source %s: %s", source.name, exc)
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from None
    services.billing_source_record_pull(source=source, error=None)
    return len(queued)


@shared_task(queue=Queues.BILLING, name="billing.pull_due_sources")
def billing_pull_due_sources_task() -> int:
    """Beat, every minute: pull each enabled source whose next pull is due."""
    due = services.billing_sources_due()
    for source_id in due:
        billing_pull_source_task.delay(source_id)
    return len(due)


@shared_task(bind=True, queue=Queues.BILLING, name="billing.reallocate", max_retries=len(DATABASE_RETRY_COUNTDOWNS))
def reallocate_task(self, reallocation_id: int) -> str | None:
    """Re-allocate every stored period after the allocation rules changed (progress on the rules page)."""
    reallocation = _retrying(
        self,
        lambda: services.reallocation_run(reallocation_id=reallocation_id),
        lambda error: services.reallocation_give_up(reallocation_id=reallocation_id, error=error),
        f"re-allocation {reallocation_id}",
    )
    return reallocation.status if reallocation else None
