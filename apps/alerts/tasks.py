"""Celery adapters: ids (or a time) in, a service call, the retry decision."""

from celery import shared_task
from django.utils.dateparse import parse_datetime

from apps.core.queues import Queues

from . import services


@shared_task(queue=Queues.ALERTS, name="alerts.evaluate", ignore_result=True)
def evaluate_rules_task(at: str | None = None) -> dict:
    """Beat (every minute): evaluate every enabled rule, then queue the notifications it produced.

    ``at`` (ISO 8601) evaluates as of another time, as tests and the demo do. A second run for the same minute
    (another worker, a redelivered task) changes nothing.
    """
    moment = parse_datetime(at) if at else None
    result = services.evaluation_cycle(at=moment)
    for notification_id in result.notifications:
        deliver_notification_task.delay_on_commit(notification_id)
    return {
        "evaluated": result.evaluated,
        "rules": result.rules,
        "opened": result.opened,
        "fired": result.fired,
        "resolved": result.resolved,
        "notifications": len(result.notifications),
        "errors": len(result.errors),
        "seconds": result.seconds,
    }


@shared_task(bind=True, queue=Queues.NOTIFICATIONS, name="alerts.deliver", ignore_result=True)
def deliver_notification_task(self, notification_id: int) -> str:
    """Deliver one notification; a failure schedules its own retry after the channel's backoff."""
    outcome = services.notification_deliver(notification_id=notification_id)
    if outcome is None:
        return "nothing to do (delivered, being sent, or not due)"
    if outcome.retry_in is not None and not self.request.is_eager:
        deliver_notification_task.apply_async((notification_id,), countdown=outcome.retry_in)
    return outcome.status


@shared_task(queue=Queues.NOTIFICATIONS, name="alerts.deliver_due", ignore_result=True)
def deliver_due_task() -> list[int]:
    """Beat: queue notifications that are due (first tries, retries, and sends whose worker died)."""
    due = services.notifications_due()
    for notification_id in due:
        deliver_notification_task.delay(notification_id)
    return due


@shared_task(queue=Queues.ALERTS, name="alerts.purge_notifications", ignore_result=True)
def purge_notifications_task() -> int:
    """Beat (daily): drop delivered and failed notifications older than 90 days."""
    return services.notifications_purge()
