from django.urls import path

from . import views

app_name = "capacity"

urlpatterns = [
    path("", views.CapacityOverviewView.as_view(), name="overview"),
    path("export.csv", views.CapacityCsvView.as_view(), name="overview-csv"),
    path("pools/<slug:slug>/", views.PoolDetailView.as_view(), name="pool"),
    path("pools/<slug:slug>/export.csv", views.PoolCsvView.as_view(), name="pool-csv"),
    path("forecasts/run/", views.ForecastRunStartView.as_view(), name="run-start"),
    path("forecasts/runs/<int:pk>/", views.ForecastRunProgressView.as_view(), name="run"),
]
