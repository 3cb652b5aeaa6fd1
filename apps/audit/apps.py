from contextlib import suppress

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from celery.signals import task_postrun, task_prerun

        from . import context, recording

        recording.connect()

        # Changes made by Celery tasks are the system's, made "via" a background task.
        tokens: dict[str, object] = {}

        def started(task_id=None, **kwargs):
            tokens[task_id] = context._current.set(context.AuditContext(via="task", actor_name=context.SYSTEM))

        def finished(task_id=None, **kwargs):
            token = tokens.pop(task_id, None)
            if token is not None:
                with suppress(ValueError):  # set in another context (eager tasks run inline): leave it
                    context.reset(token)

        task_prerun.connect(started, weak=False, dispatch_uid="audit.task_prerun")
        task_postrun.connect(finished, weak=False, dispatch_uid="audit.task_postrun")
