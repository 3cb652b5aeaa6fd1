from django.contrib import admin
from django.db import transaction

from . import services
from .models import AllocationRule, BillingImport, BillingSource, CostRollup, Reallocation, UnitVolume


@admin.register(BillingSource)
class BillingSourceAdmin(admin.ModelAdmin):
    list_display = ["name", "format", "location", "enabled", "status", "last_pulled_at", "next_pull_at"]
    list_filter = ["status", "enabled", "format"]
    search_fields = ["name", "location"]
    readonly_fields = ["last_pulled_at", "next_pull_at", "status", "consecutive_failures", "last_error"]


@admin.register(BillingImport)
class BillingImportAdmin(admin.ModelAdmin):
    """Imports are records of what happened: read-only here (upload on the source's page)."""

    list_display = ["created_at", "source", "filename", "status", "trigger", "rows_imported", "currency"]
    list_filter = ["status", "trigger", "source"]
    search_fields = ["filename", "checksum"]
    list_select_related = ["source"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AllocationRule)
class AllocationRuleAdmin(admin.ModelAdmin):
    """Saving or deleting a rule here has a worker re-allocate every stored period, as the rules page does."""

    list_display = ["order", "name", "enabled", "match", "tag_key", "value", "service", "shared", "spread"]
    list_display_links = ["name"]
    list_filter = ["enabled", "match", "shared"]
    list_select_related = ["service"]
    ordering = ["order", "pk"]

    def save_model(self, request, obj, form, change):
        services.allocation_rule_save(rule=obj, user=request.user)

    def delete_model(self, request, obj):
        services.allocation_rule_delete(rule=obj, user=request.user)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            names = ", ".join(sorted(queryset.values_list("name", flat=True)))
            queryset.delete()
            services.allocation_rules_changed(reason=f"rules {names} deleted", user=request.user)


@admin.register(UnitVolume)
class UnitVolumeAdmin(admin.ModelAdmin):
    list_display = ["day", "service", "units", "source", "updated_at"]
    list_filter = ["service", "source"]
    date_hierarchy = "day"
    list_select_related = ["service"]


@admin.register(CostRollup)
class CostRollupAdmin(admin.ModelAdmin):
    """Derived from line items; rebuilt by imports and rule changes, never edited."""

    list_display = ["day", "service", "environment", "provider", "sub_account_id", "charge_category", "effective_cost"]
    list_filter = ["provider", "charge_category", "is_shared", "service"]
    date_hierarchy = "day"
    list_select_related = ["service", "environment"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Reallocation)
class ReallocationAdmin(admin.ModelAdmin):
    """Re-allocations after rule changes: read only (the rules page and ``reallocate_billing`` start them)."""

    list_display = ["created_at", "status", "reason", "changes", "periods_done", "periods_total", "finished_at"]
    list_filter = ["status"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
