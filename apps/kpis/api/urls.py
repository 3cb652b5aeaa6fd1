"""API routes of this app, mounted under /api/v1/."""

from django.urls import path

from . import views

urlpatterns = [path("kpis/", views.KpiListApi.as_view(), name="api-kpis")]
