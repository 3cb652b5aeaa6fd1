from django.db.models import QuerySet

from .models import WorkerHeartbeat


def schedule_list() -> QuerySet:
    from django_celery_beat.models import PeriodicTask

    return PeriodicTask.objects.select_related("interval", "crontab").order_by("name")


def worker_heartbeats() -> QuerySet[WorkerHeartbeat]:
    return WorkerHeartbeat.objects.all()[:20]
