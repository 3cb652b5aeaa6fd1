"""Settings lists how often each periodic task runs in words."""

import pytest
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from apps.accounts.roles import Role
from apps.core.schedules import describe

pytestmark = pytest.mark.django_db


def _task(name, **schedule) -> PeriodicTask:
    return PeriodicTask(name=name, task="core.heartbeat", **schedule)


@pytest.mark.parametrize(
    ("every", "period", "text"),
    [
        (60, "seconds", "every minute"),
        (300, "seconds", "every 5 minutes"),
        (90, "seconds", "every 90 seconds"),
        (2, "hours", "every 2 hours"),
        (1, "days", "every day"),
    ],
)
def test_intervals(every, period, text):
    interval = IntervalSchedule.objects.create(every=every, period=period)
    assert describe(_task("t", interval=interval)) == text


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"minute": "40", "hour": "2"}, "daily at 02:40 UTC"),
        ({"minute": "0", "hour": "7", "day_of_week": "1"}, "Mondays at 07:00 UTC"),
        ({"minute": "*/15", "hour": "*"}, "cron */15 * * * * (UTC)"),
        ({"minute": "0", "hour": "6", "day_of_month": "1"}, "cron 0 6 1 * * (UTC)"),
    ],
)
def test_crontabs(fields, text):
    crontab = CrontabSchedule.objects.create(**{"day_of_week": "*", "day_of_month": "*", **fields})
    assert describe(_task("t", crontab=crontab)) == text


def test_the_settings_page_shows_them_in_words(role_client):
    crontab = CrontabSchedule.objects.create(minute="0", hour="7", day_of_week="1")
    PeriodicTask.objects.create(name="Weekly thing", task="core.heartbeat", crontab=crontab)
    page = role_client(Role.ADMIN).get("/settings/").content.decode()
    assert "Mondays at 07:00 UTC" in page and "(m/h/dM/MY/d)" not in page
