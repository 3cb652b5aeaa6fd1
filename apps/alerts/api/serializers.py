"""API shapes of the alerts app. Rules, silences and channels are validated by the same checks as the pages."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from apps.accounts.models import User
from apps.catalog.models import CapacityPool, Environment, Location, MLModel, ModelVersion, Service, Team

from ..models import Alert, AlertRule, AuditEntry, NotificationChannel, Silence
from ..validation import channel_errors, normalise_rule, rule_errors, silence_errors


def _drf_errors(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    return {("non_field_errors" if k == "__all__" else k): v for k, v in errors.items()}


def raise_from_django(exc: DjangoValidationError):
    raise serializers.ValidationError(_drf_errors(exc.message_dict)) from None


class _ScopeFields(serializers.Serializer):
    model = serializers.SlugRelatedField(
        slug_field="slug", queryset=MLModel.objects.all(), allow_null=True, required=False
    )
    version = serializers.PrimaryKeyRelatedField(
        queryset=ModelVersion.objects.select_related("model"),
        allow_null=True,
        required=False,
        help_text="ModelVersion id (see /api/v1/catalog/model-versions/).",
    )
    environment = serializers.SlugRelatedField(
        slug_field="slug", queryset=Environment.objects.all(), allow_null=True, required=False
    )
    service = serializers.SlugRelatedField(
        slug_field="slug", queryset=Service.objects.all(), allow_null=True, required=False
    )
    pool = serializers.SlugRelatedField(
        slug_field="slug", queryset=CapacityPool.objects.all(), allow_null=True, required=False
    )
    location = serializers.SlugRelatedField(
        slug_field="code", queryset=Location.objects.all(), allow_null=True, required=False
    )


class AlertRuleSerializer(_ScopeFields, serializers.ModelSerializer):
    owner_user = serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.filter(is_active=True), allow_null=True, required=False
    )
    owner_team = serializers.SlugRelatedField(
        slug_field="slug", queryset=Team.objects.all(), allow_null=True, required=False
    )
    escalation_user = serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.filter(is_active=True), allow_null=True, required=False
    )
    channels = serializers.SlugRelatedField(
        slug_field="name", queryset=NotificationChannel.objects.all(), many=True, required=False
    )
    group_by = serializers.ListField(child=serializers.CharField(), required=False)
    firing = serializers.SerializerMethodField()

    class Meta:
        model = AlertRule
        fields = [
            "id",
            "name",
            "description",
            "enabled",
            "metric",
            "kpi_key",
            "feature",
            "drift_method",
            "drift_reference",
            "drift_reference_days",
            "model",
            "version",
            "environment",
            "service",
            "pool",
            "location",
            "group_by",
            "comparison",
            "threshold",
            "recovery_threshold",
            "window_minutes",
            "consecutive_breaches",
            "no_data",
            "severity",
            "owner_user",
            "owner_team",
            "escalation_user",
            "escalate_after_minutes",
            "channels",
            "runbook",
            "group_interval_minutes",
            "repeat_interval_minutes",
            "last_error",
            "firing",
        ]
        read_only_fields = ["last_error"]

    def get_firing(self, rule) -> int:
        return rule.alerts.filter(state=Alert.State.FIRING).count()

    def validate(self, attrs):
        channels = attrs.pop("channels", None)
        if self.instance is not None:
            rule = AlertRule.objects.get(pk=self.instance.pk)
            if channels is None:
                channels = list(rule.channels.all())
        else:
            rule = AlertRule()
        for name, value in attrs.items():
            setattr(rule, name, value)
        normalise_rule(rule)
        errors = rule_errors(rule, channels or [])
        if errors:
            raise serializers.ValidationError(_drf_errors(errors))
        attrs["_rule"], attrs["_channels"] = rule, channels or []
        return attrs


class SilenceSerializer(_ScopeFields, serializers.ModelSerializer):
    rule = serializers.PrimaryKeyRelatedField(queryset=AlertRule.objects.all(), allow_null=True, required=False)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Silence
        fields = [
            "id",
            "rule",
            "model",
            "version",
            "environment",
            "service",
            "pool",
            "location",
            "starts_at",
            "ends_at",
            "comment",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def validate(self, attrs):
        silence = Silence.objects.get(pk=self.instance.pk) if self.instance is not None else Silence()
        for name, value in attrs.items():
            setattr(silence, name, value)
        if silence.version_id and not silence.model_id:
            silence.model_id = silence.version.model_id
        errors = silence_errors(silence)
        if errors:
            raise serializers.ValidationError(_drf_errors(errors))
        attrs["_silence"] = silence
        return attrs


class ChannelSerializer(serializers.ModelSerializer):
    email_to = serializers.ListField(child=serializers.EmailField(), required=False)

    class Meta:
        model = NotificationChannel
        fields = [
            "id",
            "name",
            "kind",
            "enabled",
            "email_to",
            "email_owner",
            "url",
            "secret_env_var",
            "send_resolved",
            "timeout_seconds",
            "max_attempts",
            "backoff_seconds",
        ]

    def validate(self, attrs):
        channel = NotificationChannel.objects.get(pk=self.instance.pk) if self.instance else NotificationChannel()
        for name, value in attrs.items():
            setattr(channel, name, value)
        errors = channel_errors(channel)
        if errors:
            raise serializers.ValidationError(_drf_errors(errors))
        attrs["_channel"] = channel
        return attrs


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "at",
            "actor",
            "actor_name",
            "target_type",
            "target_id",
            "target_repr",
            "action",
            "before",
            "after",
            "note",
        ]


class AlertSerializer(serializers.ModelSerializer):
    rule = serializers.PrimaryKeyRelatedField(read_only=True)
    owner_user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    owner_team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    silenced_by = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "rule",
            "rule_name",
            "fingerprint",
            "labels",
            "state",
            "severity",
            "value",
            "threshold",
            "breaches",
            "started_at",
            "fired_at",
            "resolved_at",
            "resolution",
            "owner_user",
            "owner_team",
            "acknowledged_at",
            "acknowledged_by",
            "ack_note",
            "escalated_at",
            "silenced_by",
        ]


class AlertDetailSerializer(AlertSerializer):
    timeline = serializers.SerializerMethodField()

    class Meta(AlertSerializer.Meta):
        fields = [*AlertSerializer.Meta.fields, "timeline"]

    def get_timeline(self, alert) -> list[dict]:
        return AuditEntrySerializer(alert.timeline.order_by("at", "pk"), many=True).data


class AcknowledgeSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class AssignSerializer(serializers.Serializer):
    user = serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.filter(is_active=True), required=False, allow_null=True
    )
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), required=False, allow_null=True)
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    def validate(self, attrs):
        if bool(attrs.get("user")) == bool(attrs.get("team")):
            raise serializers.ValidationError("Give either a user (username) or a team (slug) to assign the alert to.")
        return attrs


class PreviewRequestSerializer(serializers.Serializer):
    rule = AlertRuleSerializer()
    days = serializers.ChoiceField(choices=[7, 30], default=7)


class DistributionPushSerializer(serializers.Serializer):
    distributions = serializers.ListField(child=serializers.DictField())


class HealthRowSerializer(serializers.Serializer):
    model = serializers.CharField(source="model.slug")
    version = serializers.CharField(source="version.version", allow_null=True, default=None)
    environment = serializers.CharField(source="environment.slug", allow_null=True, default=None)
    status = serializers.CharField()
    status_label = serializers.CharField()
    rules = serializers.SerializerMethodField()
    open_alerts = serializers.SerializerMethodField()
    requests = serializers.FloatField(source="workload.requests", allow_null=True, default=None)
    error_rate = serializers.FloatField(source="workload.error_rate", allow_null=True, default=None)
    latency_p95_ms = serializers.FloatField(source="workload.latency_p95", allow_null=True, default=None)

    def get_rules(self, row) -> list[str]:
        return [r.name for r in row.rules]

    def get_open_alerts(self, row) -> list[int]:
        return [a.pk for a in row.alerts]


class DistributionPushResultSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    stored = serializers.IntegerField()


class DistributionItemErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(allow_null=True)
    field = serializers.CharField()
    value = serializers.JSONField(allow_null=True)
    message = serializers.CharField()


class DistributionRejectedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = DistributionItemErrorSerializer(many=True)


class ModelHealthSerializer(serializers.Serializer):
    period = serializers.CharField()
    model_sla_percent = serializers.FloatField(allow_null=True)
    versions_counted = serializers.IntegerField(allow_null=True)
    note = serializers.CharField()
    rows = HealthRowSerializer(many=True)


class PreviewResponseSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    error = serializers.CharField()
    fired = serializers.IntegerField()
    firing_hours = serializers.FloatField()
    episodes = serializers.ListField(child=serializers.DictField())
    figure = serializers.DictField()
