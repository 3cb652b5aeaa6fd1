from rest_framework import serializers


class KpiQuerySerializer(serializers.Serializer):
    period = serializers.CharField(
        required=False,
        help_text="YYYY-MM (default: this month), YYYY-Qn, YYYY-Www, YYYY-MM-DD, YYYY or YYYY-MM-DD..YYYY-MM-DD",
    )
    service = serializers.CharField(required=False, help_text="Service slug")
    team = serializers.CharField(required=False, help_text="Team slug")
    environment = serializers.CharField(required=False, help_text="Environment slug")
    location = serializers.CharField(required=False, help_text="Region code")


class KpiValueSerializer(serializers.Serializer):
    key = serializers.CharField()
    title = serializers.CharField()
    value = serializers.DecimalField(max_digits=38, decimal_places=6, allow_null=True, coerce_to_string=True)
    unit = serializers.CharField()
    previous = serializers.DecimalField(max_digits=38, decimal_places=6, allow_null=True, coerce_to_string=True)
    change = serializers.DecimalField(max_digits=38, decimal_places=6, allow_null=True, coerce_to_string=True)
    target = serializers.DecimalField(max_digits=38, decimal_places=6, allow_null=True, coerce_to_string=True)
    rag = serializers.ChoiceField(choices=["green", "amber", "red", "grey"], allow_null=True)
    direction = serializers.ChoiceField(choices=["up", "down"], help_text="Whether a higher value is better")
    n = serializers.IntegerField(allow_null=True, help_text="Sample size where it matters (NPS responses)")
    note = serializers.CharField(allow_blank=True)


class KpiResponseSerializer(serializers.Serializer):
    period = serializers.CharField()
    period_start = serializers.DateField()
    period_end = serializers.DateField(help_text="Exclusive")
    kpis = KpiValueSerializer(many=True)
