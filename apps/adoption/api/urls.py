"""API routes of this app, mounted under /api/v1/ (full paths)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("adoption/targets", views.TargetViewSet, basename="api-adoption-target")

urlpatterns = [
    path("events/batch/", views.EventBatchApi.as_view(), name="api-events-batch"),
    path("nps/responses/", views.NpsResponsesApi.as_view(), name="api-nps-responses"),
    path("adoption/summary/", views.SummaryApi.as_view(), name="api-adoption-summary"),
    path("adoption/funnel/", views.FunnelApi.as_view(), name="api-adoption-funnel"),
    path("adoption/trend/", views.TrendApi.as_view(), name="api-adoption-trend"),
    path("adoption/retention/", views.RetentionApi.as_view(), name="api-adoption-retention"),
    path("adoption/nps/", views.NpsApi.as_view(), name="api-adoption-nps"),
    path("adoption/breakdown/", views.BreakdownApi.as_view(), name="api-adoption-breakdown"),
    *router.urls,
]
