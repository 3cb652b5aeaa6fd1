from rest_framework import serializers

from ..models import Forecast, ForecastRun, Grain


class ForecastSerializer(serializers.ModelSerializer):
    level = serializers.FloatField(source="run.level")
    run = serializers.IntegerField(source="run_id")

    class Meta:
        model = Forecast
        fields = [
            "run",
            "metric",
            "grain",
            "method",
            "history_start",
            "history_end",
            "observations",
            "level",
            "points",
            "backtest_mase",
            "backtest_mase_naive",
            "backtest_ratio",
            "backtest_coverage",
            "backtest_width",
            "backtest_origins",
            "provisioned",
            "exhaustion_days",
            "exhaustion_date",
            "peak_demand",
            "recommended_capacity",
            "excess_capacity",
            "monthly_saving",
        ]


class CapacitySerializer(serializers.Serializer):
    hours = serializers.SerializerMethodField()
    used_unit_hours = serializers.FloatField()
    provisioned_unit_hours = serializers.FloatField()
    utilisation = serializers.FloatField(allow_null=True)
    target_utilisation = serializers.FloatField(source="target")
    cost = serializers.DecimalField(
        source="cost.amount", max_digits=38, decimal_places=18, allow_null=True, default=None
    )
    cost_basis = serializers.CharField(source="cost.basis", allow_null=True, default=None)
    waste_cost = serializers.DecimalField(max_digits=38, decimal_places=18, allow_null=True)
    unit = serializers.CharField()

    def get_hours(self, obj) -> int:
        return len(obj.hours)


class PoolRowSerializer(serializers.Serializer):
    pool = serializers.CharField(source="pool.slug")
    name = serializers.CharField(source="pool.name")
    resource_type = serializers.CharField(source="pool.resource_type")
    environment = serializers.CharField(source="pool.environment.slug")
    capacity = CapacitySerializer()
    forecast = ForecastSerializer(allow_null=True)


class PoolListSerializer(serializers.Serializer):
    period = serializers.CharField()
    currency = serializers.CharField()
    waste_cost = serializers.DecimalField(max_digits=38, decimal_places=18, allow_null=True)
    savings_per_month = serializers.DecimalField(max_digits=38, decimal_places=18, allow_null=True)
    pools = PoolRowSerializer(many=True)


class DaySerializer(CapacitySerializer):
    day = serializers.DateField()


class PoolDetailSerializer(PoolRowSerializer):
    period = serializers.CharField()
    days = DaySerializer(many=True)


class ForecastRunSerializer(serializers.ModelSerializer):
    progress_percent = serializers.IntegerField(source="progress.percent", read_only=True)
    series_done = serializers.IntegerField(source="progress.series_done", read_only=True)
    chunks_done = serializers.IntegerField(source="progress.chunks_done", read_only=True)
    chunks_failed = serializers.IntegerField(source="progress.chunks_failed", read_only=True)

    class Meta:
        model = ForecastRun
        fields = [
            "id",
            "kind",
            "grain",
            "status",
            "created_at",
            "started_at",
            "finished_at",
            "data_start",
            "data_end",
            "horizon",
            "level",
            "backtest_origins",
            "chunk_size",
            "series_total",
            "chunks_total",
            "series_done",
            "chunks_done",
            "chunks_failed",
            "progress_percent",
            "settings",
            "error",
        ]


class ForecastRunStartSerializer(serializers.Serializer):
    grain = serializers.ChoiceField(choices=Grain.choices, default=Grain.DAY)
