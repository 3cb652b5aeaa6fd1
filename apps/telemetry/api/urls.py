"""API routes of this app, mounted under /api/v1/ (full paths here, e.g. "telemetry/...")."""

from django.urls import path

from . import views

urlpatterns = [
    path("telemetry/", views.TelemetryPushApi.as_view(), name="telemetry-push"),
    path("telemetry/rollups/", views.RollupListApi.as_view(), name="telemetry-rollups"),
    path("telemetry/models/", views.WorkloadTelemetryApi.as_view(), name="telemetry-workloads"),
    path("telemetry/pulls/", views.TelemetryPullListApi.as_view(), name="telemetry-pulls"),
]
