from django.urls import path

from . import views

app_name = "delivery"

urlpatterns = [
    path("", views.FunctionalityView.as_view(), name="overview"),
    path("activity/", views.ActivityView.as_view(), name="activity"),
    path("import/", views.ImportView.as_view(), name="import"),
]
