from django.contrib import admin, messages
from django.db import models

from .forms import TelemetrySourceForm
from .models import MetricMapping, ServiceUnitSource, TelemetryPull, TelemetrySource
from .services import source_apply_preset


class MetricMappingInline(admin.StackedInline):
    model = MetricMapping
    extra = 0
    fields = [
        "metric",
        "query",
        "rate_window",
        ("model_label", "version_label", "environment_label"),
        ("service_label", "pool_label", "location_label"),
        "fixed_labels",
        "value_aliases",
        ("enabled", "pulled_until"),
    ]


@admin.register(TelemetrySource)
class TelemetrySourceAdmin(admin.ModelAdmin):
    form = TelemetrySourceForm
    list_display = ["name", "base_url", "enabled", "step_seconds", "pull_interval_seconds", "last_pull_at"]
    list_filter = ["enabled", "preset"]
    inlines = [MetricMappingInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    actions = ["pull_now", "backfill_again"]
    fieldsets = [
        (None, {"fields": ["name", "base_url", "enabled", "preset"]}),
        ("Authentication", {"fields": ["auth_header", "auth_env_var"]}),
        (
            "Schedule",
            {
                "fields": [
                    "step_seconds",
                    "pull_interval_seconds",
                    "backfill_hours",
                    "delay_seconds",
                    "timeout_seconds",
                    "max_retries",
                    "retry_backoff_seconds",
                ]
            },
        ),
    ]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        source = form.instance
        if source.preset:
            created = source_apply_preset(source=source)
            if created:
                self.message_user(
                    request, f"Added {len(created)} mappings from the {source.get_preset_display()} preset."
                )

    @admin.action(description="Pull the selected sources now")
    def pull_now(self, request, queryset):
        from .tasks import pull_source_task

        for source in queryset.filter(enabled=True):
            pull_source_task.delay_on_commit(source.pk)
        self.message_user(request, "Pulls queued; their records appear under Telemetry pulls.", messages.SUCCESS)

    @admin.action(description="Pull the backfill window again on the next pull")
    def backfill_again(self, request, queryset):
        from apps.audit import record

        mappings = MetricMapping.objects.filter(source__in=queryset, pulled_until__isnull=False)
        reset = list(mappings.select_related("source"))
        count = MetricMapping.objects.filter(source__in=queryset).update(pulled_until=None)
        for mapping in reset:  # a bulk update sends no signal: record it in the audit trail here
            record(
                model=MetricMapping,
                object_id=mapping.pk,
                object_repr=str(mapping),
                action="updated",
                before={"pulled_until": mapping.pulled_until.isoformat()},
                after={"pulled_until": None},
            )
        self.message_user(request, f"{count} mappings will start again from their backfill window.")


@admin.register(TelemetryPull)
class TelemetryPullAdmin(admin.ModelAdmin):
    list_display = [
        "source",
        "started_at",
        "status",
        "attempt",
        "points_received",
        "points_stored",
        "series_count",
        "duration_seconds",
    ]
    list_filter = ["status", "source"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ServiceUnitSource)
class ServiceUnitSourceAdmin(admin.ModelAdmin):
    list_display = ["service", "metric", "environment", "divisor", "enabled"]
