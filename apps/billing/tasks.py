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


@shared_task(bind=True, queue=Queues.BILLING, name="billing.import_file", max_retries=len(DATABASE_RETRY_COUNTDOWNS))
def billing_import_task(self, import_id: int) -> str | None:
    """Import one stored file. Idempotent: a finished import is skipped; a retried one starts afresh.

    An interrupted attempt leaves nothing behind (one transaction), so losing the database connection
    mid-import is retried with backoff; the worker opens a fresh connection for the next attempt.
    """
    try:
        billing_import = services.billing_import_execute(import_id=import_id)
    except (OperationalError, InterfaceError) as exc:
        retries = self.request.retries
        if retries >= self.max_retries:
            services.billing_import_give_up(
                import_id=import_id,
                error=f"the database connection was lost {retries + 1} times during the import; last error: {exc}",
            )
            raise
        logger.warning("billing import %s lost its database connection (%s); retrying", import_id, exc)
        raise self.retry(exc=exc, countdown=DATABASE_RETRY_COUNTDOWNS[retries]) from None
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
