from django.contrib import admin

from .models import CapacityPool, Environment, Location, MLModel, ModelVersion, Product, Service, Team


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "hourly_rate", "currency"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "kind"]
    list_filter = ["kind"]


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "kind", "parent"]
    list_filter = ["kind"]
    search_fields = ["code", "name"]
    list_select_related = ["parent"]
    autocomplete_fields = ["parent"]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "team", "unit_name"]
    list_filter = ["team"]
    search_fields = ["name", "slug"]
    list_select_related = ["team"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(CapacityPool)
class CapacityPoolAdmin(admin.ModelAdmin):
    list_display = ["name", "resource_type", "environment", "location", "unit_price_per_hour", "target_utilisation"]
    list_filter = ["resource_type", "environment"]
    search_fields = ["name", "slug"]
    list_select_related = ["environment", "location"]
    autocomplete_fields = ["location"]


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0


@admin.register(MLModel)
class MLModelAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "task", "service", "team"]
    list_filter = ["task", "team"]
    search_fields = ["name", "slug"]
    list_select_related = ["service", "team"]
    inlines = [ModelVersionInline]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "owner", "service"]
    search_fields = ["name", "slug"]
    list_select_related = ["owner", "service"]
