from django.urls import path

from . import views

app_name = "alerts"

urlpatterns = [
    path("", views.AlertListView.as_view(), name="list"),
    path("<int:pk>/", views.AlertDetailView.as_view(), name="detail"),
    path("<int:pk>/acknowledge/", views.AlertAcknowledgeView.as_view(), name="acknowledge"),
    path("<int:pk>/assign/", views.AlertAssignView.as_view(), name="assign"),
    path("rules/", views.RuleListView.as_view(), name="rules"),
    path("rules/new/", views.RuleFormView.as_view(), name="rule-create"),
    path("rules/preview/", views.RulePreviewView.as_view(), name="rule-preview"),
    path("rules/<int:pk>/", views.RuleDetailView.as_view(), name="rule-detail"),
    path("rules/<int:pk>/edit/", views.RuleFormView.as_view(), name="rule-edit"),
    path("rules/<int:pk>/delete/", views.RuleDeleteView.as_view(), name="rule-delete"),
    path("silences/", views.SilenceListView.as_view(), name="silences"),
    path("silences/new/", views.SilenceFormView.as_view(), name="silence-create"),
    path("silences/<int:pk>/edit/", views.SilenceFormView.as_view(), name="silence-edit"),
    path("silences/<int:pk>/expire/", views.SilenceExpireView.as_view(), name="silence-expire"),
    path("silences/<int:pk>/delete/", views.SilenceDeleteView.as_view(), name="silence-delete"),
    path("channels/", views.ChannelListView.as_view(), name="channels"),
    path("channels/new/", views.ChannelFormView.as_view(), name="channel-create"),
    path("channels/<int:pk>/edit/", views.ChannelFormView.as_view(), name="channel-edit"),
    path("channels/<int:pk>/delete/", views.ChannelDeleteView.as_view(), name="channel-delete"),
    path("channels/<int:pk>/test/", views.ChannelTestView.as_view(), name="channel-test"),
    path("audit/", views.AuditView.as_view(), name="audit"),
    path("models/", views.ModelHealthView.as_view(), name="model-health"),
]
