"""The organisation every KPI is cut by: teams, services, environments, locations, pools, models, products."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from apps.core.models import TimeStampedModel


class Team(TimeStampedModel):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=120)
    hourly_rate = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Loaded hourly cost of one engineer (salary, benefits, overhead), in the billing currency.",
    )
    currency = models.CharField(max_length=3, default="USD")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Environment(TimeStampedModel):
    class Kind(models.TextChoices):
        PROD = "prod", "Production"
        UAT = "uat", "User acceptance"
        DEV = "dev", "Development"
        TEST = "test", "Test"
        SANDBOX = "sandbox", "Sandbox"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=60)
    kind = models.CharField(max_length=16, choices=Kind.choices)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_production(self) -> bool:
        return self.kind == self.Kind.PROD


class Location(TimeStampedModel):
    class Kind(models.TextChoices):
        REGION = "region", "Region"
        STORE = "store", "Store"
        DATACENTER = "datacenter", "Data centre"
        CLOUD_REGION = "cloud_region", "Cloud region"
        OFFICE = "office", "Office"

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")

    class Meta:
        ordering = ["code"]
        indexes = [models.Index(fields=["kind", "parent"])]

    def __str__(self) -> str:
        return self.name


class Service(TimeStampedModel):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="services")
    unit_name = models.CharField(
        max_length=60, help_text="The unit of delivery the service's unit cost is quoted in, e.g. '1,000 predictions'."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CapacityPool(TimeStampedModel):
    class ResourceType(models.TextChoices):
        CPU = "cpu", "CPU cores"
        GPU = "gpu", "GPUs"
        MEMORY = "memory", "Memory (GiB)"
        NODES = "nodes", "Nodes"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=120)
    resource_type = models.CharField(max_length=16, choices=ResourceType.choices)
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.PROTECT, related_name="pools")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="pools")
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.SET_NULL, related_name="pools")
    unit_price_per_hour = models.DecimalField(
        max_digits=18,
        decimal_places=8,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Price of one unit of capacity for one hour; used when billing does not allocate cost to the pool.",
    )
    target_utilisation = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=Decimal("1.000"),
        validators=[MinValueValidator(Decimal("0.05"))],
        help_text="Utilisation above which nothing counts as waste (1.0 = all idle capacity is waste).",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(target_utilisation__gt=0) & models.Q(target_utilisation__lte=1),
                name="pool_target_utilisation_in_0_1",
            )
        ]

    def __str__(self) -> str:
        return self.name


class MLModel(TimeStampedModel):
    class Task(models.TextChoices):
        FORECASTING = "forecasting", "Forecasting"
        CLASSIFICATION = "classification", "Classification"
        REGRESSION = "regression", "Regression"
        RECOMMENDATION = "recommendation", "Recommendation"
        VISION = "vision", "Computer vision"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=120)
    task = models.CharField(max_length=24, choices=Task.choices)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="ml_models")
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="ml_models")

    class Meta:
        ordering = ["name"]
        verbose_name = "ML model"

    def __str__(self) -> str:
        return self.name


class ModelVersion(TimeStampedModel):
    class Stage(models.TextChoices):
        DEVELOPMENT = "development", "Development"
        STAGING = "staging", "Staging"
        PRODUCTION = "production", "Production"
        ARCHIVED = "archived", "Archived"

    class DeploymentMode(models.TextChoices):
        ONLINE = "online", "Online (real-time)"
        BATCH = "batch", "Batch"
        EDGE = "edge", "Store edge"
        SHADOW = "shadow", "Shadow"
        CANARY = "canary", "Canary"

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=40)
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.DEVELOPMENT)
    deployment_mode = models.CharField(max_length=16, choices=DeploymentMode.choices, default=DeploymentMode.ONLINE)
    deployed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model__name", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="model_version_unique")]

    def __str__(self) -> str:
        return f"{self.model.name} {self.version}"


class ProductQuerySet(models.QuerySet):
    def owned_by(self, user) -> "ProductQuerySet":
        return self.filter(owner=user)


class Product(TimeStampedModel):
    """An internal ML/CV product rolled out to stores and employees; adoption is measured per product."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_products",
        help_text="The product manager who may edit this product's targets and adoption data.",
    )
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.SET_NULL, related_name="products")
    usage_event_names = models.JSONField(
        default=list, blank=True, help_text="Event names that count as using the product, e.g. ['forecast_viewed']."
    )

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def editable_by(self, user) -> bool:
        from apps.accounts.roles import Role

        role = getattr(user, "role_enum", None)
        return role == Role.ADMIN or (role == Role.PRODUCT_MANAGER and self.owner_id == user.pk)
