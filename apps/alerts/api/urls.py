"""API routes of this app, mounted under /api/v1/ (full paths here, e.g. "alerts/...")."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("alerts/rules", views.AlertRuleViewSet, basename="alert-rule")
router.register("alerts/silences", views.SilenceViewSet, basename="alert-silence")
router.register("alerts/channels", views.ChannelViewSet, basename="alert-channel")
router.register("alerts", views.AlertViewSet, basename="alert")

urlpatterns = [
    path("alerts/audit/", views.AuditListApi.as_view(), name="alert-audit"),
    path("alerts/model-health/", views.ModelHealthApi.as_view(), name="alert-model-health"),
    path("alerts/distributions/", views.DistributionPushApi.as_view(), name="alert-distributions"),
    *router.urls,
]
