from rest_framework import serializers

from ..models import CapacityPool, Environment, Location, MLModel, ModelVersion, Product, Service, Team


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "slug", "name", "hourly_rate", "currency"]


class EnvironmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Environment
        fields = ["id", "slug", "name", "kind"]


class LocationSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(
        slug_field="code", queryset=Location.objects.all(), allow_null=True, required=False
    )

    class Meta:
        model = Location
        fields = ["id", "code", "name", "kind", "parent"]


class ServiceSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())

    class Meta:
        model = Service
        fields = ["id", "slug", "name", "description", "team", "unit_name"]


class CapacityPoolSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="slug", queryset=Environment.objects.all())
    location = serializers.SlugRelatedField(
        slug_field="code", queryset=Location.objects.all(), allow_null=True, required=False
    )
    service = serializers.SlugRelatedField(
        slug_field="slug", queryset=Service.objects.all(), allow_null=True, required=False
    )

    class Meta:
        model = CapacityPool
        fields = [
            "id",
            "slug",
            "name",
            "resource_type",
            "environment",
            "location",
            "service",
            "unit_price_per_hour",
            "target_utilisation",
        ]


class ModelVersionSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(slug_field="slug", queryset=MLModel.objects.all())

    class Meta:
        model = ModelVersion
        fields = ["id", "model", "version", "stage", "deployment_mode", "deployed_at"]


class MLModelSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())
    versions = serializers.SlugRelatedField(slug_field="version", many=True, read_only=True)

    class Meta:
        model = MLModel
        fields = ["id", "slug", "name", "task", "service", "team", "versions"]


class ProductSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    service = serializers.SlugRelatedField(
        slug_field="slug", queryset=Service.objects.all(), allow_null=True, required=False
    )
    # A list of event names (the model's JSONField alone would take null, a number or an object).
    usage_event_names = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        help_text=Product._meta.get_field("usage_event_names").help_text,
    )

    class Meta:
        model = Product
        fields = ["id", "slug", "name", "description", "owner", "service", "usage_event_names"]
