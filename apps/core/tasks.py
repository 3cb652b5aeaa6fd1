from celery import shared_task

from .queues import Queues
from .services import worker_heartbeat_record


@shared_task(bind=True, queue=Queues.DEFAULT, name="core.heartbeat", ignore_result=True)
def heartbeat_task(self) -> str:
    """Proves end to end that beat, the broker, a worker and the database work together."""
    return worker_heartbeat_record(hostname=self.request.hostname or "unknown").hostname
