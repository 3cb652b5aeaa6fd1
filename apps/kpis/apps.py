from django.apps import AppConfig


class KpisConfig(AppConfig):
    name = "apps.kpis"
    label = "kpis"
    verbose_name = "KPI overview"
