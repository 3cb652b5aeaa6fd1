from django.contrib import admin

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read only: the trail is written by the portal, never edited."""

    list_display = ["at", "actor_name", "via", "action", "content_type", "object_repr"]
    list_filter = ["action", "via", "content_type"]
    search_fields = ["actor_name", "object_repr", "object_id"]
    list_select_related = ["content_type"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
