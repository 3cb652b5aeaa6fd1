from celery import shared_task

from apps.core.queues import Queues

from .services import rollups_refresh, rollups_refresh_all


@shared_task(queue=Queues.DEFAULT, name="adoption.refresh_rollups", ignore_result=True)
def refresh_rollups_task(product_id: int) -> int:
    """Rebuild the daily rollup of the product-days that new events touched (queued after each batch)."""
    return rollups_refresh(product_id=product_id)


@shared_task(queue=Queues.DEFAULT, name="adoption.refresh_all_rollups", ignore_result=True)
def refresh_all_rollups_task() -> int:
    """Safety net on a schedule: anything marked but not yet refreshed, and products whose usage events changed."""
    return rollups_refresh_all()
