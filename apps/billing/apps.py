from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "apps.billing"
    label = "billing"
    verbose_name = "Billing and unit cost"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from .models import BillingImport
        from .signals import import_deleted

        post_delete.connect(import_deleted, sender=BillingImport, dispatch_uid="billing-import-deleted")
