from django.urls import path

from . import views

app_name = "kpis"

urlpatterns = [
    path("", views.OverviewView.as_view(), name="overview"),
    path("overview.csv", views.OverviewExportView.as_view(), name="overview-export"),
    path("digest/send/", views.DigestSendView.as_view(), name="digest-send"),
]
