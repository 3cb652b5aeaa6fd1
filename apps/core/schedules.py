"""Default periodic tasks, created once after migrate; admins may then edit or disable them.

Each feature app adds its schedules to DEFAULT_SCHEDULES. Existing rows are never overwritten, so an
admin's change to an interval or an enabled flag survives every deploy.
"""

from typing import Any

DEFAULT_SCHEDULES: list[dict[str, Any]] = [
    {"name": "Worker heartbeat", "task": "core.heartbeat", "every_seconds": 60, "queue": "default"},
]


def ensure_default_schedules(sender: Any = None, using: str = "default", **kwargs: Any) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for spec in DEFAULT_SCHEDULES:
        if PeriodicTask.objects.using(using).filter(name=spec["name"]).exists():
            continue
        interval, _ = IntervalSchedule.objects.using(using).get_or_create(
            every=spec["every_seconds"], period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.using(using).create(
            name=spec["name"], task=spec["task"], interval=interval, queue=spec.get("queue"), enabled=True
        )
