from django.apps import AppConfig


class AdoptionConfig(AppConfig):
    name = "apps.adoption"
    label = "adoption"
    verbose_name = "Adoption"
