"""Delivery data: features with effort, deployments, changes (commits) and incidents, and the DORA benchmarks.

Every ingested row is keyed by its source's own id (``source`` + ``external_id``; a change by its commit
SHA), so sending the same data again through the API, a CSV file or a webhook changes nothing.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from apps.catalog.models import Environment, Service, Team
from apps.core.models import TimeStampedModel

ENV_VAR_NAME = RegexValidator(
    r"^OPSPORTAL_DELIVERY_[A-Z0-9_]+$",
    "Use an environment variable named OPSPORTAL_DELIVERY_..., upper case, digits and underscores only.",
)


class DeliverySource(TimeStampedModel):
    """Where delivery data comes from: a CI/CD system's webhook, an API client or CSV uploads.

    A GitHub-style webhook source names the environment variable that holds its signing secret; the
    secret itself is never stored in the database.
    """

    class Kind(models.TextChoices):
        API = "api", "API client"
        CSV = "csv", "CSV upload"
        GITHUB = "github", "GitHub-style deployment webhook"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.API)
    secret_env_var = models.CharField(
        max_length=100,
        blank=True,
        validators=[ENV_VAR_NAME],
        help_text="Webhook sources: the name of the environment variable holding the signing secret, "
        "e.g. OPSPORTAL_DELIVERY_GITHUB_SECRET. The secret is never stored in the database.",
    )
    repository_services = models.JSONField(
        default=dict,
        blank=True,
        help_text="Webhook sources: which service each repository deploys, "
        'e.g. {"meridian/pricing": "price-forecast"}. Without an entry, the deployment\'s payload.service '
        "or a service named like the repository is used.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TeamDeliveryProfile(TimeStampedModel):
    """How a team's story points turn into hours, so point-estimated features get a labour cost."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="delivery_profile")
    hours_per_point = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Engineering hours one story point stands for in this team (e.g. 6.00).",
    )

    class Meta:
        ordering = ["team__name"]

    def __str__(self) -> str:
        return f"{self.team}: {self.hours_per_point} h per point"


class Change(TimeStampedModel):
    """A commit. Deployments and features refer to it by SHA; its commit time may arrive later."""

    sha = models.CharField(max_length=64, unique=True)
    committed_at = models.DateTimeField(null=True, blank=True)
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-committed_at"]

    def __str__(self) -> str:
        return self.sha[:12]


class DeploymentQuerySet(models.QuerySet):
    def production(self) -> "DeploymentQuerySet":
        return self.filter(environment__kind=Environment.Kind.PROD)

    def finished(self) -> "DeploymentQuerySet":
        return self.filter(status__in=[Deployment.Status.SUCCESS, Deployment.Status.FAILURE])


class Deployment(TimeStampedModel):
    class Status(models.TextChoices):
        SUCCESS = "success", "Succeeded"
        FAILURE = "failure", "Failed"
        IN_PROGRESS = "in_progress", "In progress"

    source = models.ForeignKey(DeliverySource, on_delete=models.PROTECT, related_name="deployments")
    external_id = models.CharField(max_length=200, help_text="The deployment's id in its source.")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="deployments")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deployments")
    deployed_at = models.DateTimeField(help_text="When the deployment finished (or started, while in progress).")
    status = models.CharField(max_length=16, choices=Status.choices)
    status_at = models.DateTimeField(
        help_text="Time of the status report the current status came from; an older report never overwrites it."
    )
    commit_sha = models.CharField(max_length=64, help_text="The commit deployed (the head of the release).")
    changes = models.ManyToManyField(Change, through="DeploymentChange", related_name="deployments")

    objects = DeploymentQuerySet.as_manager()

    class Meta:
        ordering = ["-deployed_at"]
        constraints = [models.UniqueConstraint(fields=["source", "external_id"], name="deployment_source_id_unique")]
        indexes = [
            models.Index(fields=["deployed_at", "status"]),
            models.Index(fields=["service", "deployed_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.service_id} {self.external_id} {self.status}"


class DeploymentChange(models.Model):
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    change = models.ForeignKey(Change, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "change"], name="deployment_change_unique")]

    def __str__(self) -> str:
        return f"{self.deployment_id} <- {self.change_id}"


class Feature(TimeStampedModel):
    """A piece of functionality with its effort. It ships when all its changes are live in production.

    ``first_deployment`` and ``shipped_at`` are derived (services.features_refresh_shipping): the
    successful production deployment of the feature's service that brought the last of its changes live.
    """

    class EffortUnit(models.TextChoices):
        HOURS = "hours", "Hours"
        POINTS = "points", "Story points"

    source = models.ForeignKey(DeliverySource, on_delete=models.PROTECT, related_name="features")
    external_id = models.CharField(max_length=200, help_text="The feature's id in its source, e.g. a ticket key.")
    title = models.CharField(max_length=300)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="features")
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="features")
    effort = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0"))])
    effort_unit = models.CharField(max_length=8, choices=EffortUnit.choices, default=EffortUnit.HOURS)
    effort_hours = models.DecimalField(
        max_digits=14, decimal_places=4, help_text="Effort in hours (points x the team's hours per point)."
    )
    changes = models.ManyToManyField(Change, through="FeatureChange", related_name="features")
    first_deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="shipped_features"
    )
    shipped_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-shipped_at", "title"]
        constraints = [models.UniqueConstraint(fields=["source", "external_id"], name="feature_source_id_unique")]
        indexes = [models.Index(fields=["team", "shipped_at"])]

    def __str__(self) -> str:
        return self.title


class FeatureChange(models.Model):
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="+")
    change = models.ForeignKey(Change, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["feature", "change"], name="feature_change_unique")]

    def __str__(self) -> str:
        return f"{self.feature_id} <- {self.change_id}"


class Incident(TimeStampedModel):
    """A production incident or user-impacting defect, linked explicitly to the deployment that caused it."""

    source = models.ForeignKey(DeliverySource, on_delete=models.PROTECT, related_name="incidents")
    external_id = models.CharField(max_length=200)
    title = models.CharField(max_length=300, blank=True)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="incidents")
    started_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="incident_source_id_unique"),
            models.CheckConstraint(
                condition=models.Q(resolved_at__isnull=True) | models.Q(resolved_at__gte=models.F("started_at")),
                name="incident_resolved_after_start",
            ),
        ]
        indexes = [models.Index(fields=["resolved_at"]), models.Index(fields=["service", "started_at"])]

    def __str__(self) -> str:
        return self.title or self.external_id


class DeliveryImport(TimeStampedModel):
    """One CSV file or API batch: what it held and what it did (or why it was refused, row by row)."""

    class Channel(models.TextChoices):
        CSV = "csv", "CSV file"
        API = "api", "API batch"

    class Kind(models.TextChoices):
        FEATURES = "features", "Features"
        DEPLOYMENTS = "deployments", "Deployments"
        CHANGES = "changes", "Changes (commits)"
        INCIDENTS = "incidents", "Incidents"

    class Status(models.TextChoices):
        APPLIED = "applied", "Applied"
        REJECTED = "rejected", "Rejected"

    channel = models.CharField(max_length=8, choices=Channel.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    source = models.ForeignKey(DeliverySource, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    filename = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices)
    rows = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.filename or self.channel} ({self.status})"


class WebhookDelivery(models.Model):
    """A webhook delivery that was processed, so a redelivery of the same id is recognised and skipped."""

    source = models.ForeignKey(DeliverySource, on_delete=models.CASCADE, related_name="webhook_deliveries")
    delivery_id = models.CharField(max_length=100)
    event = models.CharField(max_length=60)
    received_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=300)
    deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["source", "delivery_id"], name="webhook_delivery_unique")]

    def __str__(self) -> str:
        return f"{self.source_id} {self.delivery_id}: {self.outcome}"


class DoraBenchmark(models.Model):
    """A published set of DORA performance tiers. The active one rates the portal's figures (the newest
    source year when none is marked active); admins add a new year's set when DORA publishes one."""

    source_year = models.PositiveSmallIntegerField(unique=True)
    source = models.CharField(max_length=200, help_text='e.g. "DORA Accelerate State of DevOps Report 2024"')
    url = models.URLField(blank=True)
    note = models.TextField(blank=True)
    active = models.BooleanField(default=False, help_text="Rate the portal's figures with this set.")

    class Meta:
        ordering = ["-source_year"]
        constraints = [
            models.UniqueConstraint(
                fields=["active"], condition=models.Q(active=True), name="one_active_dora_benchmark"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source} ({self.source_year})"


class DoraMetric(models.TextChoices):
    DEPLOYMENT_FREQUENCY = "deployment_frequency", "Deployment frequency"
    LEAD_TIME = "lead_time", "Lead time for changes"
    CHANGE_FAILURE_RATE = "change_failure_rate", "Change failure rate"
    TIME_TO_RESTORE = "time_to_restore", "Time to restore service"


class DoraTierThreshold(models.Model):
    """The bound a metric must meet for a tier: at least ``bound`` deployments per day for deployment
    frequency; at most ``bound`` hours (lead time, time to restore) or percent (change failure rate) for the
    others. An empty bound is the catch-all lowest tier."""

    class Tier(models.TextChoices):
        ELITE = "elite", "Elite"
        HIGH = "high", "High"
        MEDIUM = "medium", "Medium"
        LOW = "low", "Low"

    benchmark = models.ForeignKey(DoraBenchmark, on_delete=models.CASCADE, related_name="thresholds")
    metric = models.CharField(max_length=24, choices=DoraMetric.choices)
    tier = models.CharField(max_length=8, choices=Tier.choices)
    rank = models.PositiveSmallIntegerField(help_text="1 = best tier; tiers are tried best first.")
    bound = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    label = models.CharField(max_length=120, help_text='The report\'s wording, e.g. "Between one day and one week".')

    class Meta:
        ordering = ["benchmark", "metric", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["benchmark", "metric", "tier"], name="dora_threshold_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.benchmark.source_year} {self.metric} {self.tier}: {self.label}"
