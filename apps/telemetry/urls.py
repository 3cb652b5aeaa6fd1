from django.urls import path

from . import views

app_name = "telemetry"

urlpatterns = [
    path("", views.ModelTelemetryView.as_view(), name="models"),
    path("export.csv", views.ModelTelemetryCsvView.as_view(), name="models-csv"),
]
