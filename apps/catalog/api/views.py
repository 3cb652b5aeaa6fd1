"""The catalog over the API: every role reads, only admins write (RolePermission's default)."""

from rest_framework import viewsets

from ..models import CapacityPool, Environment, Location, MLModel, ModelVersion, Product, Service, Team
from . import serializers


class TeamViewSet(viewsets.ModelViewSet):
    queryset = Team.objects.all()
    serializer_class = serializers.TeamSerializer
    lookup_field = "slug"


class EnvironmentViewSet(viewsets.ModelViewSet):
    queryset = Environment.objects.all()
    serializer_class = serializers.EnvironmentSerializer
    lookup_field = "slug"
    filterset_fields = ["kind"]


class LocationViewSet(viewsets.ModelViewSet):
    queryset = Location.objects.select_related("parent")
    serializer_class = serializers.LocationSerializer
    lookup_field = "code"
    filterset_fields = ["kind", "parent__code"]


class ServiceViewSet(viewsets.ModelViewSet):
    queryset = Service.objects.select_related("team")
    serializer_class = serializers.ServiceSerializer
    lookup_field = "slug"
    filterset_fields = ["team__slug"]


class CapacityPoolViewSet(viewsets.ModelViewSet):
    queryset = CapacityPool.objects.select_related("environment", "location", "service")
    serializer_class = serializers.CapacityPoolSerializer
    lookup_field = "slug"
    filterset_fields = ["resource_type", "environment__slug"]


class MLModelViewSet(viewsets.ModelViewSet):
    queryset = MLModel.objects.select_related("service", "team").prefetch_related("versions")
    serializer_class = serializers.MLModelSerializer
    lookup_field = "slug"
    filterset_fields = ["task", "service__slug"]


class ModelVersionViewSet(viewsets.ModelViewSet):
    queryset = ModelVersion.objects.select_related("model")
    serializer_class = serializers.ModelVersionSerializer
    filterset_fields = ["stage", "model__slug"]


class ProductViewSet(viewsets.ModelViewSet):
    queryset = Product.objects.select_related("owner", "service")
    serializer_class = serializers.ProductSerializer
    lookup_field = "slug"
