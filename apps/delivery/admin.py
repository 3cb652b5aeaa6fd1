from django.contrib import admin
from django.db import models

from .models import (
    Change,
    DeliveryImport,
    DeliverySource,
    Deployment,
    DoraBenchmark,
    DoraTierThreshold,
    Feature,
    Incident,
    TeamDeliveryProfile,
    WebhookDelivery,
)
from .services import features_refresh_shipping, team_delivery_profile_set


@admin.register(DeliverySource)
class DeliverySourceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "kind", "secret_env_var"]
    list_filter = ["kind"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(TeamDeliveryProfile)
class TeamDeliveryProfileAdmin(admin.ModelAdmin):
    list_display = ["team", "hours_per_point"]
    list_select_related = ["team"]

    def save_model(self, request, obj, form, change):
        # Through the service, so the hours of the team's point-estimated features follow the new rate.
        saved = team_delivery_profile_set(team=obj.team, hours_per_point=obj.hours_per_point)
        obj.pk = saved.pk


class DoraTierThresholdInline(admin.TabularInline):
    model = DoraTierThreshold
    extra = 0


@admin.register(DoraBenchmark)
class DoraBenchmarkAdmin(admin.ModelAdmin):
    list_display = ["source_year", "source", "active"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    inlines = [DoraTierThresholdInline]


class _DerivedShippingAdmin(admin.ModelAdmin):
    """Deleting deployments or features re-derives when the affected features shipped."""

    def _changes_of(self, queryset) -> set[int]:
        return set(
            queryset.model.changes.through.objects.filter(
                **{f"{queryset.model._meta.model_name}__in": queryset}
            ).values_list("change_id", flat=True)
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        features = [obj.pk] if isinstance(obj, Feature) else []
        features_refresh_shipping(
            feature_ids=features, change_ids=self._changes_of(type(obj).objects.filter(pk=obj.pk))
        )

    def delete_model(self, request, obj):
        self.delete_queryset(request, type(obj).objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        changes = self._changes_of(queryset)
        super().delete_queryset(request, queryset)
        features_refresh_shipping(change_ids=changes)


@admin.register(Deployment)
class DeploymentAdmin(_DerivedShippingAdmin):
    list_display = ["external_id", "source", "service", "environment", "status", "deployed_at"]
    list_filter = ["status", "environment", "service", "source"]
    search_fields = ["external_id", "commit_sha"]
    list_select_related = ["source", "service", "environment"]
    date_hierarchy = "deployed_at"
    exclude = ["changes"]


@admin.register(Feature)
class FeatureAdmin(_DerivedShippingAdmin):
    list_display = ["title", "external_id", "service", "team", "effort", "effort_unit", "shipped_at"]
    list_filter = ["team", "service", "effort_unit"]
    search_fields = ["title", "external_id"]
    list_select_related = ["service", "team"]
    # Effort is converted to hours on ingestion (team profiles); edit it by sending the feature again.
    readonly_fields = ["team", "effort", "effort_unit", "effort_hours", "first_deployment", "shipped_at"]
    exclude = ["changes"]


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["external_id", "title", "service", "started_at", "resolved_at", "deployment"]
    list_filter = ["service", "source"]
    search_fields = ["external_id", "title"]
    list_select_related = ["service", "deployment"]
    raw_id_fields = ["deployment"]


@admin.register(Change)
class ChangeAdmin(admin.ModelAdmin):
    list_display = ["sha", "committed_at", "service"]
    search_fields = ["sha"]
    list_select_related = ["service"]


@admin.register(DeliveryImport)
class DeliveryImportAdmin(admin.ModelAdmin):
    list_display = ["created_at", "channel", "kind", "filename", "status", "rows", "created", "updated", "unchanged"]
    list_filter = ["status", "kind", "channel"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["received_at", "source", "event", "delivery_id", "outcome"]
    list_filter = ["source", "event"]
    search_fields = ["delivery_id"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
