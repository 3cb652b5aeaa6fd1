from rest_framework import serializers

from apps.core.limits import upload_size_problem

from ..models import Change, DeliveryImport, Deployment, Feature, Incident
from ..records import SCHEMAS

DOC_FIELDS = {
    "string": lambda c: serializers.CharField(required=c.required, help_text=c.help),
    "number": lambda c: serializers.DecimalField(
        max_digits=14, decimal_places=2, required=c.required, help_text=c.help
    ),
    "date-time": lambda c: serializers.DateTimeField(required=c.required, help_text=c.help),
    "list": lambda c: serializers.ListField(child=serializers.CharField(), required=c.required, help_text=c.help),
}


def batch_request_serializer(kind: str) -> type[serializers.Serializer]:
    """The documented request body of a batch: built from the same column list the importer checks."""
    schema = SCHEMAS[kind]
    item = type(
        f"Delivery{kind.title()}Item",
        (serializers.Serializer,),
        {c.name: DOC_FIELDS[c.type](c) for c in schema.columns},
    )
    return type(
        f"Delivery{kind.title()}Batch",
        (serializers.Serializer,),
        {
            "source": serializers.SlugField(
                required=False, help_text="The system the ids come from (default: api); ids are unique per source."
            ),
            "items": item(many=True, help_text="Up to a few thousand records; all are applied or none."),
        },
    )


class DeliveryImportSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    uploaded_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = DeliveryImport
        fields = [
            "id",
            "channel",
            "kind",
            "source",
            "filename",
            "sha256",
            "uploaded_by",
            "status",
            "rows",
            "created",
            "updated",
            "unchanged",
            "errors",
            "created_at",
        ]
        read_only_fields = fields


class RowErrorSerializer(serializers.Serializer):
    item = serializers.IntegerField(required=False, help_text="API batches: the item's index, from 0.")
    row = serializers.IntegerField(required=False, help_text="CSV files: the row, counting the header as row 1.")
    column = serializers.CharField()
    value = serializers.CharField()
    expected = serializers.CharField()


class RejectedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = RowErrorSerializer(many=True)


class CsvImportRequestSerializer(serializers.Serializer):
    # A plain string in the schema: the enum is documented once, on the import record.
    kind = serializers.CharField(help_text="features, deployments, changes or incidents")
    file = serializers.FileField(help_text="UTF-8 CSV with a header row.")
    source = serializers.SlugField(required=False)

    def validate_kind(self, value: str) -> str:
        if value not in DeliveryImport.Kind.values:
            raise serializers.ValidationError(f"expected one of {', '.join(DeliveryImport.Kind.values)}")
        return value

    def validate_file(self, upload):
        if too_large := upload_size_problem(upload, "csv"):
            raise serializers.ValidationError(too_large)
        return upload


class FeatureSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    feature_id = serializers.CharField(source="external_id")
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    changes = serializers.SlugRelatedField(slug_field="sha", many=True, read_only=True)
    first_deployment = serializers.SlugRelatedField(slug_field="external_id", read_only=True)

    class Meta:
        model = Feature
        fields = [
            "id",
            "source",
            "feature_id",
            "title",
            "service",
            "team",
            "effort",
            "effort_unit",
            "effort_hours",
            "changes",
            "first_deployment",
            "shipped_at",
        ]
        read_only_fields = fields


class DeploymentSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    deployment_id = serializers.CharField(source="external_id")
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    environment = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    commit = serializers.CharField(source="commit_sha")
    changes = serializers.SlugRelatedField(slug_field="sha", many=True, read_only=True)

    class Meta:
        model = Deployment
        fields = [
            "id",
            "source",
            "deployment_id",
            "service",
            "environment",
            "deployed_at",
            "status",
            "commit",
            "changes",
        ]
        read_only_fields = fields


class ChangeSerializer(serializers.ModelSerializer):
    commit = serializers.CharField(source="sha")
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Change
        fields = ["id", "commit", "committed_at", "service"]
        read_only_fields = fields


class IncidentSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    incident_id = serializers.CharField(source="external_id")
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    deployment_id = serializers.CharField(source="deployment.external_id", default=None, read_only=True)
    deployment_source = serializers.CharField(source="deployment.source.slug", default=None, read_only=True)

    class Meta:
        model = Incident
        fields = [
            "id",
            "source",
            "incident_id",
            "service",
            "title",
            "started_at",
            "resolved_at",
            "deployment_id",
            "deployment_source",
        ]
        read_only_fields = fields


class WebhookResponseSerializer(serializers.Serializer):
    detail = serializers.CharField()
    deployment_id = serializers.CharField(required=False, allow_null=True)
    errors = serializers.ListField(child=serializers.DictField(), required=False)


class CostSerializer(serializers.Serializer):
    features_shipped = serializers.IntegerField()
    effort_hours = serializers.DecimalField(max_digits=20, decimal_places=4)
    labour = serializers.DecimalField(max_digits=30, decimal_places=4)
    non_production_environments = serializers.DecimalField(
        max_digits=38, decimal_places=6, allow_null=True, help_text="null: billing has no data for the period"
    )
    cost_per_feature = serializers.DecimalField(max_digits=38, decimal_places=6, allow_null=True)


class DoraMetricSerializer(serializers.Serializer):
    value = serializers.DecimalField(max_digits=20, decimal_places=6, allow_null=True)
    unit = serializers.CharField()
    tier = serializers.CharField(allow_null=True)
    tier_label = serializers.CharField(allow_null=True)
    n = serializers.IntegerField()


class MetricsSerializer(serializers.Serializer):
    period = serializers.CharField()
    scope = serializers.DictField(child=serializers.CharField(allow_null=True))
    cost = CostSerializer()
    dora = serializers.DictField(child=DoraMetricSerializer())
    benchmark = serializers.DictField(allow_null=True)
