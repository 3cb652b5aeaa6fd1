from django.contrib import admin

from .models import Target


@admin.register(Target)
class TargetAdmin(admin.ModelAdmin):
    """Targets are set on the targets page; the admin site lists them all for a quick look or a fix."""

    list_display = ["kpi", "month", "value", "direction", "product", "service", "created_by", "updated_at"]
    list_filter = ["kpi", "direction", "month"]
    search_fields = ["kpi", "product__name", "service__name"]
    list_select_related = ["product", "service", "created_by"]
    date_hierarchy = "month"
    readonly_fields = ["created_by"]
