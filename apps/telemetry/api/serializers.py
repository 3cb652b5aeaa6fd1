from rest_framework import serializers

from ..metrics import METRICS
from ..models import Rollup, TelemetryPull
from ..push import MAX_POINTS_PER_BATCH

DATE_OR_DATETIME = ["iso-8601", "%Y-%m-%d"]


class PushPointSerializer(serializers.Serializer):
    """One sample. Name a model (optionally its version) or a service for workload metrics, a pool for capacity."""

    metric = serializers.ChoiceField(choices=sorted(METRICS))
    timestamp = serializers.CharField(help_text="RFC 3339 with a time zone (2026-11-27T08:00:00Z) or Unix seconds.")
    value = serializers.FloatField(help_text="A finite number; counters, latencies and capacities are never negative.")
    model = serializers.CharField(required=False, help_text="MLModel slug.")
    version = serializers.CharField(required=False, help_text="ModelVersion.version of that model.")
    environment = serializers.CharField(required=False, help_text="Environment slug.")
    service = serializers.CharField(required=False, help_text="Service slug (implied by the model).")
    pool = serializers.CharField(required=False, help_text="CapacityPool slug.")
    location = serializers.CharField(required=False, help_text="Location code.")


class PushRequestSerializer(serializers.Serializer):
    points = PushPointSerializer(many=True, help_text=f"At most {MAX_POINTS_PER_BATCH} points.")
    partial = serializers.BooleanField(
        default=False,
        help_text="false (default): any invalid point refuses the whole batch and nothing is stored. "
        "true: the valid points are stored and the invalid ones listed in errors.",
    )


class PointErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(allow_null=True, help_text="Position of the point in `points`; null: the batch.")
    field = serializers.CharField()
    value = serializers.JSONField(allow_null=True)
    message = serializers.CharField()


class PushResponseSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    stored = serializers.IntegerField(help_text="created + updated")
    created = serializers.IntegerField()
    updated = serializers.IntegerField(help_text="Points already stored with another value, now replaced.")
    unchanged = serializers.IntegerField(help_text="Points already stored with this value: nothing written.")
    rejected = serializers.IntegerField()
    series = serializers.IntegerField()
    errors = PointErrorSerializer(many=True)


class PushRejectedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    received = serializers.IntegerField()
    errors = PointErrorSerializer(many=True)


class RollupQuerySerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=sorted(METRICS))
    grain = serializers.ChoiceField(choices=Rollup.Grain.choices, default=Rollup.Grain.HOUR)
    start = serializers.DateTimeField(input_formats=DATE_OR_DATETIME, help_text="Inclusive (UTC if no zone).")
    end = serializers.DateTimeField(input_formats=DATE_OR_DATETIME, help_text="Exclusive.")
    model = serializers.CharField(required=False)
    version = serializers.CharField(required=False)
    environment = serializers.CharField(required=False)
    service = serializers.CharField(required=False)
    pool = serializers.CharField(required=False)
    location = serializers.CharField(required=False)

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": "must be after start"})
        return attrs


class RollupSerializer(serializers.ModelSerializer):
    metric = serializers.CharField(source="series.metric")
    model = serializers.CharField(source="series.model.slug", default=None)
    version = serializers.CharField(source="series.version.version", default=None)
    environment = serializers.CharField(source="series.environment.slug", default=None)
    service = serializers.CharField(source="series.service.slug", default=None)
    pool = serializers.CharField(source="series.pool.slug", default=None)
    location = serializers.CharField(source="series.location.code", default=None)
    mean = serializers.FloatField(allow_null=True)

    class Meta:
        model = Rollup
        fields = [
            "metric",
            "model",
            "version",
            "environment",
            "service",
            "pool",
            "location",
            "grain",
            "bucket_start",
            "count",
            "sum",
            "min",
            "max",
            "mean",
            "p50",
            "p95",
            "p99",
        ]


class WorkloadBucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    requests = serializers.FloatField()
    errors = serializers.FloatField()
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)


class WorkloadSerializer(serializers.Serializer):
    model = serializers.CharField(source="key.model_slug")
    version = serializers.CharField(source="key.version")
    environment = serializers.CharField(source="key.environment")
    requests = serializers.FloatField()
    errors = serializers.FloatField()
    error_rate = serializers.FloatField(allow_null=True)
    throughput_rps = serializers.FloatField(source="throughput", allow_null=True)
    latency_p50_ms = serializers.FloatField(source="latency_p50", allow_null=True)
    latency_p95_ms = serializers.FloatField(source="latency_p95", allow_null=True)
    latency_p99_ms = serializers.FloatField(source="latency_p99", allow_null=True)
    buckets = WorkloadBucketSerializer(source="ordered", many=True)


class WorkloadListSerializer(serializers.Serializer):
    period = serializers.CharField()
    grain = serializers.CharField()
    workloads = WorkloadSerializer(many=True)


class TelemetryPullSerializer(serializers.ModelSerializer):
    source = serializers.CharField(source="source.name")

    class Meta:
        model = TelemetryPull
        fields = [
            "id",
            "source",
            "status",
            "attempt",
            "started_at",
            "finished_at",
            "duration_seconds",
            "window_start",
            "window_end",
            "requests",
            "points_received",
            "points_stored",
            "points_skipped",
            "series_count",
            "errors",
            "retryable",
        ]
