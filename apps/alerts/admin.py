"""Admin site: team alert addresses are edited here; rules, silences and channels have their own pages (which
record every change in the audit trail), so the admin site only shows them."""

from django.contrib import admin
from django.db import models

from .models import (
    Alert,
    AlertRule,
    AuditEntry,
    Distribution,
    Notification,
    NotificationChannel,
    Silence,
    TeamAlertContact,
)


@admin.register(TeamAlertContact)
class TeamAlertContactAdmin(admin.ModelAdmin):
    list_display = ["team", "email"]
    autocomplete_fields: list[str] = []


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shown, not edited: changes go through the alert pages so that they are audited."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AlertRule)
class AlertRuleAdmin(ReadOnlyAdmin):
    list_display = ["name", "metric", "comparison", "threshold", "severity", "enabled", "last_error"]
    list_filter = ["metric", "severity", "enabled"]
    search_fields = ["name"]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["pk", "rule_name", "fingerprint", "state", "severity", "started_at", "fired_at", "resolved_at"]
    list_filter = ["state", "severity"]
    search_fields = ["rule_name", "fingerprint"]


@admin.register(Silence)
class SilenceAdmin(ReadOnlyAdmin):
    list_display = ["pk", "rule", "starts_at", "ends_at", "created_by", "comment"]


@admin.register(NotificationChannel)
class NotificationChannelAdmin(ReadOnlyAdmin):
    list_display = ["name", "kind", "enabled", "secret_env_var"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["key", "kind", "channel", "status", "attempts", "created_at", "delivered_at"]
    list_filter = ["status", "kind"]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_name", "action", "target_type", "target_repr"]
    list_filter = ["target_type", "action"]


@admin.register(Distribution)
class DistributionAdmin(ReadOnlyAdmin):
    list_display = ["model", "version", "environment", "feature", "ts", "is_reference", "kind", "n"]
    list_filter = ["kind", "is_reference"]
