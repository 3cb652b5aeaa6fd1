from django.urls import path

from . import views

app_name = "capacity"

urlpatterns = [path("", views.CapacityOverviewView.as_view(), name="overview")]
