from django.urls import path

from . import views

app_name = "adoption"

urlpatterns = [path("", views.AdoptionOverviewView.as_view(), name="overview")]
