from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from .schedules import ensure_default_schedules

        post_migrate.connect(ensure_default_schedules, sender=self)
