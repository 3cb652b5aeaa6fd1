"""API routes of this app, mounted under /api/v1/ (full paths here, e.g. "capacity/...")."""

from django.urls import path

from . import views

urlpatterns = [
    path("capacity/pools/", views.PoolCapacityListApi.as_view(), name="capacity-pools"),
    path("capacity/pools/<slug:slug>/", views.PoolCapacityDetailApi.as_view(), name="capacity-pool-detail"),
    path("capacity/forecast-runs/", views.ForecastRunListApi.as_view(), name="capacity-forecast-runs"),
    path("capacity/forecast-runs/<int:pk>/", views.ForecastRunDetailApi.as_view(), name="capacity-forecast-run"),
]
