from celery import shared_task

from apps.core.queues import Queues

from .digest import digest_send


@shared_task(
    queue=Queues.NOTIFICATIONS, name="kpis.weekly_digest", autoretry_for=(OSError,), retry_backoff=60, max_retries=5
)
def weekly_digest_task() -> int:
    return digest_send()
