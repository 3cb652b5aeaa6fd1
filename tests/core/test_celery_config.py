from django.conf import settings

from apps.core.queues import Queues
from opsportal.celery import app


def test_every_task_names_a_declared_queue():
    app.loader.import_default_modules()
    declared = {q.name for q in settings.CELERY_TASK_QUEUES}
    assert declared == {q.value for q in Queues}
    own_tasks = {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert own_tasks, "no portal task was registered"
    for name, task in own_tasks.items():
        assert task.queue in declared, f"task {name} has no declared queue (got {task.queue!r})"


def test_celery_is_configured_for_safe_json_work():
    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.task_time_limit > conf.task_soft_time_limit > 0


def test_default_schedules_exist_after_migrate(db):
    from django_celery_beat.models import PeriodicTask

    heartbeat = PeriodicTask.objects.get(name="Worker heartbeat")
    assert heartbeat.task == "core.heartbeat" and heartbeat.enabled
    assert heartbeat.interval.every == 60
