from django.contrib import admin

from .models import Event, NpsCampaign, NpsResponse


@admin.register(NpsCampaign)
class NpsCampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "product", "opens_on", "closes_on", "slug"]
    list_filter = ["product"]
    search_fields = ["name", "slug"]


@admin.register(NpsResponse)
class NpsResponseAdmin(admin.ModelAdmin):
    list_display = ["campaign", "respondent", "score", "submitted_at", "source"]
    list_filter = ["campaign__product", "source"]
    search_fields = ["respondent", "comment"]
    readonly_fields = ["campaign", "product", "respondent", "score", "comment", "submitted_at", "source"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Events are read-only here: they arrive through the event API or a CSV import."""

    list_display = ["timestamp", "product", "name", "user_id", "location", "role", "source", "backfill"]
    list_filter = ["product", "source", "backfill"]
    search_fields = ["user_id", "event_id"]
    list_select_related = ["product", "location"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
