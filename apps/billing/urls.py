from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("", views.UnitCostView.as_view(), name="unit-cost"),
    path("unit-cost.csv", views.UnitCostExportView.as_view(), name="unit-cost-export"),
    path("explorer/", views.CostExplorerView.as_view(), name="explorer"),
    path("explorer/cost.csv", views.CostExplorerExportView.as_view(), name="explorer-export"),
    path("sources/", views.SourceListView.as_view(), name="sources"),
    path("sources/new/", views.SourceFormView.as_view(), name="source-create"),
    path("sources/<int:pk>/", views.SourceDetailView.as_view(), name="source-detail"),
    path("sources/<int:pk>/edit/", views.SourceFormView.as_view(), name="source-edit"),
    path("sources/<int:pk>/pull/", views.SourcePullView.as_view(), name="source-pull"),
    path("sources/<int:pk>/upload/", views.SourceUploadView.as_view(), name="source-upload"),
    path("imports/<int:pk>/", views.ImportDetailView.as_view(), name="import-detail"),
    path("imports/<int:pk>/progress/", views.ImportProgressView.as_view(), name="import-progress"),
    path("rules/", views.RuleListView.as_view(), name="rules"),
    path("rules/new/", views.RuleFormView.as_view(), name="rule-create"),
    path("rules/preview/", views.RulePreviewView.as_view(), name="rule-preview"),
    path("rules/<int:pk>/edit/", views.RuleFormView.as_view(), name="rule-edit"),
    path("rules/<int:pk>/delete/", views.RuleDeleteView.as_view(), name="rule-delete"),
    path("rules/reallocation/", views.ReallocationStatusView.as_view(), name="reallocation-status"),
    path("rules/reallocate/", views.ReallocateView.as_view(), name="reallocate"),
    path("units/", views.UnitsView.as_view(), name="units"),
]
