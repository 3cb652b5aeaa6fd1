"""API routes of this app, mounted under /api/v1/ (full paths here, e.g. "delivery/...")."""

from django.urls import path

from . import views

urlpatterns = [
    path("delivery/features/", views.FeatureBatchApi.as_view(), name="delivery-feature-list"),
    path("delivery/deployments/", views.DeploymentBatchApi.as_view(), name="delivery-deployment-list"),
    path("delivery/changes/", views.ChangeBatchApi.as_view(), name="delivery-change-list"),
    path("delivery/incidents/", views.IncidentBatchApi.as_view(), name="delivery-incident-list"),
    path("delivery/imports/", views.CsvImportApi.as_view(), name="delivery-import-list"),
    path("delivery/metrics/", views.MetricsApi.as_view(), name="delivery-metrics"),
    path("delivery/webhooks/github/<slug:slug>/", views.GitHubWebhookApi.as_view(), name="delivery-webhook-github"),
]
