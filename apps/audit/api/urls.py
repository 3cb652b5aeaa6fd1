"""API routes of the audit trail, mounted under /api/v1/."""

from django.urls import path

from . import views

urlpatterns = [path("audit/", views.AuditListApi.as_view(), name="api-audit")]
