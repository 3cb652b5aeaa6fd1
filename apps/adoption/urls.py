from django.urls import path

from . import views

app_name = "adoption"

urlpatterns = [
    path("", views.AdoptionOverviewView.as_view(), name="overview"),
    path("retention/", views.RetentionView.as_view(), name="retention"),
    path("nps/", views.NpsView.as_view(), name="nps"),
    path("nps/campaigns/", views.CampaignCreateView.as_view(), name="campaign-create"),
    path("locations/", views.LocationsView.as_view(), name="locations"),
    path("targets/", views.TargetsView.as_view(), name="targets"),
    path("targets/<int:pk>/", views.TargetEditView.as_view(), name="target-edit"),
    path("targets/<int:pk>/delete/", views.TargetDeleteView.as_view(), name="target-delete"),
    path("import/", views.ImportView.as_view(), name="import"),
    path("export/<slug:kind>.csv", views.ExportView.as_view(), name="export"),
    path("survey/<slug:slug>/", views.SurveyView.as_view(), name="survey"),
]
