"""API routes of this app, mounted under /api/v1/ (full paths here, e.g. "billing/...")."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("billing/sources", views.BillingSourceViewSet, basename="billing-source")
router.register("billing/imports", views.BillingImportViewSet, basename="billing-import")
router.register("billing/rules", views.AllocationRuleViewSet, basename="billing-rule")
router.register("billing/reallocations", views.ReallocationViewSet, basename="billing-reallocation")

urlpatterns = [
    path("billing/units/", views.UnitVolumesView.as_view(), name="billing-units"),
    path("billing/unit-costs/", views.UnitCostsView.as_view(), name="billing-unit-costs"),
    path("billing/costs/", views.CostsView.as_view(), name="billing-costs"),
    path("billing/anomalies/", views.AnomaliesView.as_view(), name="billing-anomalies"),
    *router.urls,
]
