import logging

from celery import shared_task

from apps.core.queues import Queues

from . import services
from .models import BillingSource

logger = logging.getLogger(__name__)


@shared_task(queue=Queues.BILLING, name="billing.import_file")
def billing_import_task(import_id: int) -> str | None:
    """Import one stored file. Idempotent: a finished import is skipped; a retried one starts afresh."""
    billing_import = services.billing_import_execute(import_id=import_id)
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
