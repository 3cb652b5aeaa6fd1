"""Billing over the API. Money is a decimal string with every stored digit (never a float)."""

import copy
from decimal import Decimal

from django.utils.timezone import localdate
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.catalog.models import Environment, Location, Service
from apps.core.periods import PeriodError, parse_period

from .. import importer
from ..forms import (
    auth_env_var_problem,
    billing_file_problem,
    format_choices,
    location_problem,
    parse_weights,
    rule_problems,
    weights_json,
)
from ..models import AllocationRule, BillingImport, BillingSource, Reallocation, UnitVolume
from ..reports import COST_FIELDS, DIMENSIONS, GRAINS

DECIMAL_SCHEMA = {"type": "string", "format": "decimal", "example": "1234.56"}


def decimal_text(value: Decimal | None) -> str | None:
    if value is None:
        return None
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@extend_schema_field({**DECIMAL_SCHEMA, "nullable": True})
class MoneyField(serializers.Field):
    """A decimal written as a string, trailing zeros dropped: "1234.5" for 1234.500000000000000000."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return decimal_text(value)


# --- Sources and imports ------------------------------------------------------------------------------------


class BillingSourceSerializer(serializers.ModelSerializer):
    class Meta:
        model = BillingSource
        fields = [
            "id",
            "name",
            "format",
            "location",
            "auth_env_var",
            "pull_every_minutes",
            "enabled",
            "status",
            "last_pulled_at",
            "next_pull_at",
            "consecutive_failures",
            "last_error",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "status",
            "last_pulled_at",
            "next_pull_at",
            "consecutive_failures",
            "last_error",
            "created_at",
            "updated_at",
        ]

    def validate_location(self, value: str) -> str:
        value = value.strip()
        if problem := location_problem(value):
            raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs):
        location = attrs.get("location", self.instance.location if self.instance else "")
        name = attrs.get("auth_env_var", self.instance.auth_env_var if self.instance else "").strip()
        if problem := auth_env_var_problem(name, location):
            raise serializers.ValidationError({"auth_env_var": problem})
        if "auth_env_var" in attrs:
            attrs["auth_env_var"] = name
        return attrs


class PullQueuedSerializer(serializers.Serializer):
    source = serializers.IntegerField()
    queued = serializers.BooleanField()
    detail = serializers.CharField()


class ProgressSerializer(serializers.Serializer):
    rows = serializers.IntegerField(help_text="Rows read so far (all rows once finished).")
    percent = serializers.IntegerField(allow_null=True, help_text="Share of the file read; null when unknown.")


class BillingImportSerializer(serializers.ModelSerializer):
    source_name = serializers.CharField(source="source.name", read_only=True)
    started_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    billed_total = MoneyField()
    effective_total = MoneyField()
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = BillingImport
        fields = [
            "id",
            "source",
            "source_name",
            "filename",
            "checksum",
            "size",
            "format",
            "focus_version",
            "status",
            "trigger",
            "started_by",
            "periods",
            "currency",
            "rows_read",
            "rows_imported",
            "rows_rejected",
            "rows_replaced",
            "billed_total",
            "effective_total",
            "error",
            "errors",
            "warnings",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "progress",
        ]
        read_only_fields = fields

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, obj: BillingImport) -> dict:
        return importer.import_progress(obj)


class BillingUploadSerializer(serializers.Serializer):
    source = serializers.PrimaryKeyRelatedField(queryset=BillingSource.objects.all())
    file = serializers.FileField(help_text="CSV (optionally gzip-compressed) or Parquet.")
    format = serializers.ChoiceField(
        choices=format_choices(), required=False, allow_blank=True, help_text="Empty: the source's format."
    )

    def validate_file(self, upload):
        if problem := billing_file_problem(upload):
            raise serializers.ValidationError(problem)
        return upload


# --- Allocation rules ---------------------------------------------------------------------------------------


class ReallocationSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = Reallocation
        fields = [
            "id",
            "status",
            "reason",
            "changes",
            "requested_by",
            "periods_done",
            "periods_total",
            "percent",
            "error",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class AllocationRuleSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(
        slug_field="slug", queryset=Service.objects.all(), allow_null=True, required=False
    )
    environment = serializers.SlugRelatedField(
        slug_field="slug", queryset=Environment.objects.all(), allow_null=True, required=False
    )
    location = serializers.SlugRelatedField(
        slug_field="code", queryset=Location.objects.all(), allow_null=True, required=False
    )
    weights = serializers.JSONField(
        required=False, help_text='For spread "weights": {"service-slug": weight, ...}, weights above 0.'
    )

    class Meta:
        model = AllocationRule
        fields = [
            "id",
            "name",
            "order",
            "enabled",
            "match",
            "tag_key",
            "value",
            "service",
            "environment",
            "location",
            "shared",
            "spread",
            "weights",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate_weights(self, value):
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise serializers.ValidationError('expected an object such as {"price-forecast": 2, "promotions": 1}')
        return value

    def validate(self, attrs):
        rule = AllocationRule()
        if self.instance:  # a copy: the stored rule is left alone if this change is refused
            rule = copy.copy(self.instance)
            rule._state = copy.copy(self.instance._state)
        for name, value in attrs.items():
            setattr(rule, name, value)
        weights, weight_problems = parse_weights(rule.weights or {})
        rule.weights = weights_json(weights)
        problems = rule_problems(rule, weight_problems)
        if problems:
            raise serializers.ValidationError(problems)
        attrs["weights"] = rule.weights
        self.rule = rule
        return attrs


class RulePreviewSampleSerializer(serializers.Serializer):
    charge_period_start = serializers.DateTimeField()
    provider_name = serializers.CharField(allow_null=True)
    sub_account_id = serializers.CharField(allow_null=True)
    service_name = serializers.CharField(allow_null=True)
    resource_id = serializers.CharField(allow_null=True)
    resource_name = serializers.CharField(allow_null=True)
    tags = serializers.JSONField(allow_null=True)
    effective_cost = MoneyField()
    billed_cost = MoneyField()


class RulePreviewTakenSerializer(serializers.Serializer):
    rule = serializers.CharField()
    line_items = serializers.IntegerField()
    effective_cost = MoneyField()


class AllocationRuleChangeSerializer(AllocationRuleSerializer):
    """A saved rule, with the re-allocation that takes the change in (documents the answer)."""

    reallocation = ReallocationSerializer(
        read_only=True, allow_null=True, help_text="The worker's re-allocation of every stored period."
    )

    class Meta(AllocationRuleSerializer.Meta):
        fields = [*AllocationRuleSerializer.Meta.fields, "reallocation"]


class RulePreviewSerializer(serializers.Serializer):
    matches = serializers.IntegerField(help_text="Line items the rule's condition matches, whatever the order.")
    claims = serializers.IntegerField(help_text="Of those, the ones no earlier rule takes.")
    effective_cost = MoneyField(source="effective")
    billed_cost = MoneyField(source="billed")
    unallocated_line_items = serializers.IntegerField(source="unallocated_count")
    unallocated_effective_cost = MoneyField(source="unallocated_effective")
    taken_from_rules = serializers.SerializerMethodField()
    sample = RulePreviewSampleSerializer(many=True)
    currency = serializers.CharField()
    warnings = serializers.ListField(child=serializers.CharField())

    @extend_schema_field(RulePreviewTakenSerializer(many=True))
    def get_taken_from_rules(self, obj) -> list:
        rows = [{"rule": name, "line_items": n, "effective_cost": cost} for name, n, cost in obj.from_rules]
        return RulePreviewTakenSerializer(rows, many=True).data


# --- Units of service ----------------------------------------------------------------------------------------


class UnitVolumeItemSerializer(serializers.Serializer):
    service = serializers.CharField(help_text="The service's slug.")
    date = serializers.DateField(help_text="YYYY-MM-DD")
    units = serializers.DecimalField(
        max_digits=24,
        decimal_places=6,
        min_value=Decimal(0),
        help_text="Units delivered that day, in the service's unit of delivery (Service.unit_name).",
    )

    def validate_service(self, value: str) -> str:
        known = self.context.get("services", {})
        if value not in known:
            raise serializers.ValidationError(f"{value!r} is not a known service slug")
        return value


class UnitVolumeSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    unit = serializers.CharField(source="service.unit_name", read_only=True)
    date = serializers.DateField(source="day", read_only=True)
    units = MoneyField()

    class Meta:
        model = UnitVolume
        fields = ["service", "unit", "date", "units", "source", "updated_at"]


class UnitVolumesStoredSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()


class UnitVolumeErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the item in the list, from 0.")
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class UnitVolumesRejectedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = UnitVolumeErrorSerializer(many=True)


# --- Reports ----------------------------------------------------------------------------------------------


class PeriodQuerySerializer(serializers.Serializer):
    period = serializers.CharField(
        required=False, help_text="YYYY-MM (default: this month), YYYY-Qn, YYYY-Www, YYYY-MM-DD, YYYY or a range."
    )
    cost = serializers.ChoiceField(choices=list(COST_FIELDS), required=False, default="effective")

    def validate_period(self, value: str):
        try:
            return parse_period(value, today=localdate())
        except PeriodError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validated_period(self):
        return self.validated_data.get("period") or parse_period(None, today=localdate())


class CostsQuerySerializer(PeriodQuerySerializer):
    group_by = serializers.ChoiceField(choices=list(DIMENSIONS), required=False, default="service")
    grain = serializers.ChoiceField(choices=list(GRAINS), required=False, help_text="Default: by the period's length.")
    service = serializers.CharField(required=False, help_text='A service slug, or "unallocated".')
    environment = serializers.CharField(required=False, help_text="An environment slug.")
    provider = serializers.CharField(required=False)


class AnomaliesQuerySerializer(PeriodQuerySerializer):
    dimension = serializers.ChoiceField(choices=["all", "service", "sub_account"], required=False, default="all")
    service = serializers.CharField(required=False, help_text="Only this service (slug).")
    min_excess = serializers.DecimalField(
        max_digits=20, decimal_places=2, min_value=Decimal(0), required=False, help_text="Default 50."
    )
    min_percent = serializers.DecimalField(
        max_digits=6, decimal_places=2, min_value=Decimal(0), required=False, help_text="Default 20."
    )


class UnitCostServiceSerializer(serializers.Serializer):
    service = serializers.CharField(source="service.slug")
    name = serializers.CharField(source="service.name")
    unit = serializers.CharField(source="service.unit_name")
    allocated_cost = MoneyField(source="current.cost")
    direct_cost = MoneyField(source="current.direct")
    shared_cost = MoneyField(source="current.shared")
    units = MoneyField(source="current.units")
    units_source = serializers.CharField(source="current.units_source")
    unit_cost = MoneyField()
    previous_allocated_cost = MoneyField(source="previous.cost")
    previous_units = MoneyField(source="previous.units")
    previous_unit_cost = MoneyField()
    change_percent = MoneyField()
    cost_change_percent = MoneyField()
    units_change_percent = MoneyField()
    target = MoneyField()
    rag = serializers.CharField(allow_null=True)


class UnitCostReportSerializer(serializers.Serializer):
    period = serializers.CharField(source="period.key")
    previous_period = serializers.CharField(source="previous_period.key")
    cost = serializers.CharField()
    currency = serializers.CharField()
    total_cost = MoneyField(source="totals.total")
    allocated_cost = MoneyField(source="totals.allocated")
    unallocated_cost = MoneyField(source="totals.unallocated")
    unallocated_percent = MoneyField(source="totals.unallocated_percent")
    weighted_change_percent = serializers.SerializerMethodField(
        help_text="Cost-weighted average change of unit cost across services, in percent."
    )
    targets = serializers.BooleanField(source="targets_apply", help_text="Whether targets apply (monthly periods).")
    services = UnitCostServiceSerializer(source="rows", many=True)

    @extend_schema_field({**DECIMAL_SCHEMA, "nullable": True})
    def get_weighted_change_percent(self, obj) -> str | None:
        change = obj.weighted_change
        return decimal_text(None if change is None else change * 100)


class CostSeriesSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    total = MoneyField()
    values = serializers.ListField(child=MoneyField())


class CostsSerializer(serializers.Serializer):
    period = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField(help_text="Exclusive.")
    group_by = serializers.CharField()
    grain = serializers.CharField()
    cost = serializers.CharField()
    currency = serializers.CharField()
    total = MoneyField()
    buckets = serializers.ListField(child=serializers.DateField())
    series = CostSeriesSerializer(many=True)


class AnomalySerializer(serializers.Serializer):
    day = serializers.DateField()
    dimension = serializers.CharField()
    key = serializers.CharField()
    label = serializers.CharField()
    direction = serializers.CharField()
    actual = MoneyField()
    expected = MoneyField()
    lower = MoneyField()
    upper = MoneyField()
    excess = MoneyField()


class AnomaliesSerializer(serializers.Serializer):
    period = serializers.CharField()
    cost = serializers.CharField()
    min_excess = MoneyField()
    min_percent = MoneyField()
    anomalies = AnomalySerializer(many=True)
