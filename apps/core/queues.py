from enum import StrEnum


class Queues(StrEnum):
    """Named Celery queues, so a backlog of one kind of work cannot starve another.

    settings.CELERY_TASK_QUEUES declares the same names; a test checks that every task names one.
    """

    DEFAULT = "default"
    BILLING = "billing"
    TELEMETRY = "telemetry"
    FORECASTS = "forecasts"
    ALERTS = "alerts"
    NOTIFICATIONS = "notifications"
