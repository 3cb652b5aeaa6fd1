"""Default periodic tasks, created once after migrate; admins may then edit or disable them.

Each app lists its defaults as ``SCHEDULES`` in ``apps/<app>/schedules.py`` (this module holds core's).
Existing rows are never overwritten, so an admin's change to an interval or an enabled flag survives
every deploy.
"""

import importlib
from typing import Any

from django.apps import apps

SCHEDULES: list[dict[str, Any]] = [
    {"name": "Worker heartbeat", "task": "core.heartbeat", "every_seconds": 60, "queue": "default"},
]


def default_schedules() -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = []
    for config in apps.get_app_configs():
        if not config.name.startswith("apps."):
            continue
        try:
            module = importlib.import_module(f"{config.name}.schedules")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.schedules":
                raise
            continue
        specs.extend(getattr(module, "SCHEDULES", []))
    return specs


def ensure_default_schedules(sender: Any = None, using: str = "default", **kwargs: Any) -> None:
    """Create the schedules that do not exist yet.

    A spec is ``{"name", "task", "queue", "every_seconds": N}`` or ``{..., "crontab": {"minute": "0",
    "hour": "7", "day_of_week": "1"}}`` (UTC).
    """
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    for spec in default_schedules():
        if PeriodicTask.objects.using(using).filter(name=spec["name"]).exists():
            continue
        when: dict[str, Any]
        if "crontab" in spec:
            crontab, _ = CrontabSchedule.objects.using(using).get_or_create(**spec["crontab"], timezone="UTC")
            when = {"crontab": crontab}
        else:
            interval, _ = IntervalSchedule.objects.using(using).get_or_create(
                every=spec["every_seconds"], period=IntervalSchedule.SECONDS
            )
            when = {"interval": interval}
        PeriodicTask.objects.using(using).create(
            name=spec["name"], task=spec["task"], queue=spec.get("queue"), enabled=True, **when
        )


DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]  # cron's 0-6
UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


def _every(seconds: int) -> str:
    for size, name in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % size == 0:
            n = seconds // size
            return f"every {name}" if n == 1 else f"every {n} {name}s"
    return "every second" if seconds == 1 else f"every {seconds} seconds"


def describe(task) -> str:
    """How often a periodic task runs, in words: 'every 5 minutes', 'daily at 02:40 UTC',
    'Mondays at 07:00 UTC'; other crontabs as their five fields."""
    if task.interval_id:
        return _every(task.interval.every * UNITS.get(task.interval.period, 1))
    if task.crontab_id:
        c = task.crontab
        zone = str(c.timezone)
        if c.minute.isdigit() and c.hour.isdigit() and c.day_of_month == "*" and c.month_of_year == "*":
            at = f"{int(c.hour):02d}:{int(c.minute):02d} {zone}"
            if c.day_of_week == "*":
                return f"daily at {at}"
            if c.day_of_week.isdigit() and int(c.day_of_week) < 7:
                return f"{DAYS[int(c.day_of_week)]}s at {at}"
        return f"cron {c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week} ({zone})"
    return "—"
