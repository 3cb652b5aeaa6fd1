from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("", views.UnitCostView.as_view(), name="unit-cost"),
    path("explorer/", views.CostExplorerView.as_view(), name="explorer"),
]
