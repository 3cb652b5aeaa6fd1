from django.urls import path

from . import views

app_name = "kpis"

urlpatterns = [path("", views.OverviewView.as_view(), name="overview")]
