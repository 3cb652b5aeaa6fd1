from decimal import Decimal

import factory

from apps.catalog import models as catalog
from apps.telemetry.models import MetricMapping, TelemetrySource
from tests.factories import EnvironmentFactory, ServiceFactory, TeamFactory


class LocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = catalog.Location
        django_get_or_create = ["code"]

    code = factory.Sequence(lambda n: f"loc-{n}")
    name = factory.Sequence(lambda n: f"Location {n}")
    kind = catalog.Location.Kind.CLOUD_REGION


class MLModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = catalog.MLModel
        django_get_or_create = ["slug"]

    slug = factory.Sequence(lambda n: f"model-{n}")
    name = factory.Sequence(lambda n: f"Model {n}")
    task = catalog.MLModel.Task.CLASSIFICATION
    service = factory.SubFactory(ServiceFactory)
    team = factory.SubFactory(TeamFactory)


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = catalog.ModelVersion
        django_get_or_create = ["model", "version"]

    model = factory.SubFactory(MLModelFactory)
    version = "1.0.0"
    stage = catalog.ModelVersion.Stage.PRODUCTION


class CapacityPoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = catalog.CapacityPool
        django_get_or_create = ["slug"]

    slug = factory.Sequence(lambda n: f"pool-{n}")
    name = factory.Sequence(lambda n: f"Pool {n}")
    resource_type = catalog.CapacityPool.ResourceType.GPU
    environment = factory.SubFactory(EnvironmentFactory)
    unit_price_per_hour = Decimal("1.00")
    target_utilisation = Decimal("1.000")


class TelemetrySourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TelemetrySource

    name = factory.Sequence(lambda n: f"Prometheus {n}")
    base_url = "http://127.0.0.1:9"
    step_seconds = 60
    backfill_hours = 1
    delay_seconds = 0
    timeout_seconds = 5
    max_retries = 2
    retry_backoff_seconds = 1


class MetricMappingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MetricMapping

    source = factory.SubFactory(TelemetrySourceFactory)
    metric = "gpu_used"
    query = "sum by (pool) (gpu_used)"
    pool_label = "pool"
