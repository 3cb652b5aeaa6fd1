"""API shapes. Events and NPS answers are checked by apps.adoption.validation / services (fast, with
per-item errors); these serializers describe them for the schema and serialise targets."""

from rest_framework import serializers

from apps.catalog.models import Product
from apps.kpis.models import Target

from ..metrics import METRICS


class EventInSerializer(serializers.Serializer):
    event_id = serializers.UUIDField(help_text="Client-generated; a repeated id is a retry and is ignored.")
    product = serializers.SlugField(help_text="The product's slug, e.g. price-forecasting.")
    user_id = serializers.CharField(max_length=128)
    event = serializers.CharField(
        help_text="trial_requested, trial_started, second_trial_requested, demo_attended, training_completed, "
        "rating_submitted, or one of the product's usage events."
    )
    timestamp = serializers.DateTimeField(help_text="ISO 8601; without an offset read as UTC; not in the future.")
    properties = serializers.DictField(
        required=False,
        help_text="location (store or region code), role, rating (1-5, required on rating_submitted), anything else.",
    )


class EventBatchInSerializer(serializers.Serializer):
    events = EventInSerializer(many=True, help_text="1 to 1,000 events.")


class ItemErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the item in the request (0-based).")
    event_id = serializers.CharField(allow_null=True)
    field = serializers.CharField()
    message = serializers.CharField()


class BatchRejectedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = ItemErrorSerializer(many=True)


class EventBatchResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Events stored by this call.")
    duplicates = serializers.IntegerField(help_text="Events already stored (or repeated in the batch), skipped.")
    duplicate_ids = serializers.ListField(child=serializers.UUIDField())


class NpsResponseInSerializer(serializers.Serializer):
    campaign = serializers.SlugField()
    user_id = serializers.CharField(max_length=150)
    score = serializers.IntegerField(min_value=0, max_value=10)
    comment = serializers.CharField(required=False, allow_blank=True)
    submitted_at = serializers.DateTimeField(required=False)


class NpsResponsesInSerializer(serializers.Serializer):
    responses = NpsResponseInSerializer(many=True)


class NpsResponsesResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="Second answers to the same campaign by the same person, skipped.")


class TileSerializer(serializers.Serializer):
    key = serializers.CharField()
    title = serializers.CharField()
    unit = serializers.CharField()
    value = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    change = serializers.CharField(allow_null=True)
    change_percent = serializers.CharField(allow_null=True)
    n = serializers.IntegerField(allow_null=True)
    detail = serializers.CharField()
    target = serializers.CharField(allow_null=True)
    direction = serializers.CharField()
    rag = serializers.CharField(allow_null=True)
    projected = serializers.CharField(allow_null=True)
    reaches_target = serializers.BooleanField(allow_null=True)
    progress_percent = serializers.CharField(allow_null=True)
    incomplete = serializers.BooleanField()
    sparkline = serializers.ListField(child=serializers.CharField(allow_null=True))
    note = serializers.CharField()


class FunnelStepSerializer(serializers.Serializer):
    step = serializers.CharField()
    label = serializers.CharField()
    users = serializers.IntegerField()
    step_conversion_percent = serializers.CharField(allow_null=True)
    overall_conversion_percent = serializers.CharField(allow_null=True)


class TrendPointSerializer(serializers.Serializer):
    day = serializers.DateField()
    dau = serializers.IntegerField()
    mau_rolling_30d = serializers.IntegerField()
    stickiness_percent = serializers.CharField(allow_null=True)


class RetentionCellSerializer(serializers.Serializer):
    cohort = serializers.CharField()
    cohort_size = serializers.IntegerField()
    month = serializers.IntegerField()
    retained = serializers.IntegerField()
    retained_percent = serializers.CharField(allow_null=True)
    incomplete = serializers.BooleanField()


class NpsSummarySerializer(serializers.Serializer):
    nps = serializers.CharField(allow_null=True)
    n = serializers.IntegerField()
    promoters = serializers.IntegerField()
    passives = serializers.IntegerField()
    detractors = serializers.IntegerField()
    ci95_low = serializers.CharField(allow_null=True)
    ci95_high = serializers.CharField(allow_null=True)
    label = serializers.CharField()
    distribution = serializers.ListField(child=serializers.IntegerField(), help_text="Responses per score 0..10.")


class BreakdownRowSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="Store or region code, or the role.")
    name = serializers.CharField()
    mau = serializers.IntegerField()
    dau = serializers.CharField(allow_null=True)
    stickiness = serializers.CharField(allow_null=True)
    trial_requests = serializers.IntegerField()
    trial_starts = serializers.IntegerField()
    second_trials = serializers.IntegerField()
    demos = serializers.IntegerField()
    trainings = serializers.IntegerField()
    avg_rating = serializers.CharField(allow_null=True)
    sessions_per_user = serializers.CharField(allow_null=True)
    usage_frequency = serializers.CharField(allow_null=True)


class TargetSerializer(serializers.ModelSerializer):
    kpi = serializers.ChoiceField(choices=[(k, m.title) for k, m in METRICS.items()])
    product = serializers.SlugRelatedField(
        slug_field="slug", queryset=Product.objects.all(), allow_null=True, required=False
    )
    direction = serializers.ChoiceField(choices=Target.DirectionChoice.choices, required=False)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Target
        fields = ["id", "kpi", "product", "month", "value", "direction", "created_by", "created_at", "updated_at"]
        read_only_fields = ["id", "created_by", "created_at", "updated_at"]
