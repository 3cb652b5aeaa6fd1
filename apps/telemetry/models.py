"""Telemetry: where it comes from (Prometheus sources and their metric mappings, the push API), how it is
stored (series, raw points, hourly and daily rollups) and what each pull did.

Reading telemetry: use ``apps.telemetry.selectors`` (``series_rollups``, ``service_units``), never raw points:
raw points are kept only for ``TELEMETRY_RAW_RETENTION_DAYS`` and exist to build the rollups.
"""

from decimal import Decimal

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from apps.catalog.models import CapacityPool, Environment, Location, MLModel, ModelVersion, Service
from apps.core.models import TimeStampedModel

from .metrics import METRIC_CHOICES, METRICS, Kind

ENV_VAR_NAME = RegexValidator(r"^[A-Za-z_][A-Za-z0-9_]*$", "An environment variable name, e.g. PROMETHEUS_TOKEN.")
LABEL_NAME = RegexValidator(r"^[a-zA-Z_][a-zA-Z0-9_]*$", "A Prometheus label name, e.g. model_name.")
DIMENSIONS = ("model", "version", "environment", "service", "pool", "location")


class TelemetrySource(TimeStampedModel):
    """A Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics ...) pulled on a schedule.

    Every ``pull_interval_seconds`` the beat task ``telemetry.pull_due_sources`` queues a pull, which runs each
    enabled mapping's query with ``query_range`` from where the mapping stopped (``MetricMapping.pulled_until``)
    to ``now - delay_seconds``, at ``step_seconds``, in chunks under Prometheus' 11,000-points-per-series limit.
    A new mapping starts ``backfill_hours`` back. The optional auth header's value is read from the environment
    variable ``auth_env_var`` at pull time, so no secret is stored in the database.
    """

    class Preset(models.TextChoices):
        KSERVE = "kserve", "KServe (Python model server)"
        SELDON = "seldon", "Seldon Core 2 / MLServer"
        BENTOML = "bentoml", "BentoML"
        TF_SERVING = "tf_serving", "TensorFlow Serving"
        TRITON = "triton", "NVIDIA Triton"
        DCGM = "dcgm", "DCGM GPU exporter"
        NODE_EXPORTER = "node_exporter", "node_exporter (CPU and memory)"

    name = models.CharField(max_length=120, unique=True)
    base_url = models.URLField(help_text="Base URL of the Prometheus HTTP API, e.g. http://prometheus:9090")
    auth_header = models.CharField(
        max_length=100, blank=True, help_text="Header sent with every query, e.g. Authorization. Empty: none."
    )
    auth_env_var = models.CharField(
        max_length=100,
        blank=True,
        validators=[ENV_VAR_NAME],
        help_text="Name of the environment variable (of the worker) holding the header's value, e.g. "
        "PROMETHEUS_AUTH holding 'Bearer ...'.",
    )
    preset = models.CharField(
        max_length=20, choices=Preset.choices, blank=True, help_text="Creates the preset's metric mappings on save."
    )
    enabled = models.BooleanField(default=True)
    step_seconds = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1)], help_text="Resolution of the pulled samples."
    )
    pull_interval_seconds = models.PositiveIntegerField(default=300, validators=[MinValueValidator(10)])
    backfill_hours = models.PositiveIntegerField(default=168, help_text="How far back a new mapping's first pull goes.")
    delay_seconds = models.PositiveIntegerField(
        default=60, help_text="Pull up to now minus this, so late scrapes and rule evaluations have landed."
    )
    timeout_seconds = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1)])
    max_retries = models.PositiveIntegerField(default=5, help_text="Retries of a failed pull before giving up.")
    retry_backoff_seconds = models.PositiveIntegerField(
        default=30, help_text="First retry delay; it doubles with each retry (at most an hour)."
    )
    last_pull_at = models.DateTimeField(null=True, blank=True, editable=False)
    lock_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MetricMapping(models.Model):
    """One PromQL query of a source and how its result series map onto opsportal's series.

    ``query`` is a template: ``{step}`` becomes the step as a duration (e.g. ``60s``), so a counter's
    ``increase(x[{step}])`` gives the count per sample; ``{window}`` becomes ``rate_window``. Each
    ``<dimension>_label`` names the Prometheus label whose value is the catalog's slug (model slug, version
    string, environment slug, service slug, pool slug, location code); ``fixed_labels`` gives values for
    dimensions the source does not label (``{"pool": "gpu-a10g-prod"}``) and ``value_aliases`` translates
    label values (``{"model": {"price_elasticity": "price-elasticity"}}``).
    """

    source = models.ForeignKey(TelemetrySource, on_delete=models.CASCADE, related_name="mappings")
    metric = models.CharField(max_length=40, choices=METRIC_CHOICES)
    query = models.TextField(help_text="PromQL; {step} and {window} are replaced before the query is sent.")
    rate_window = models.CharField(max_length=20, default="5m")
    model_label = models.CharField(max_length=100, blank=True, validators=[LABEL_NAME])
    version_label = models.CharField(max_length=100, blank=True, validators=[LABEL_NAME])
    environment_label = models.CharField(max_length=100, blank=True, validators=[LABEL_NAME])
    service_label = models.CharField(max_length=100, blank=True, validators=[LABEL_NAME])
    pool_label = models.CharField(max_length=100, blank=True, validators=[LABEL_NAME])
    location_label = models.CharField(max_length=100, blank=True, validators=[LABEL_NAME])
    fixed_labels = models.JSONField(default=dict, blank=True)
    value_aliases = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    pulled_until = models.DateTimeField(
        null=True, blank=True, help_text="Last step stored; the next pull starts one step later. Clear to backfill."
    )

    class Meta:
        ordering = ["source", "metric", "pk"]

    def __str__(self) -> str:
        return f"{self.source}: {self.metric}"

    def label_for(self, dimension: str) -> str:
        return getattr(self, f"{dimension}_label")


class Series(models.Model):
    """One telemetry series: a metric for one combination of model, version, environment, service, pool and
    location (each optional). ``key`` spells that identity out, so a series is found or created in one lookup.

    A model implies its service and a pool its environment and location: points are normalised that way
    before their series is looked up, so the same workload never splits over two series.
    """

    metric = models.CharField(max_length=40, choices=METRIC_CHOICES)
    model = models.ForeignKey(MLModel, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    pool = models.ForeignKey(CapacityPool, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "series"
        indexes = [
            models.Index(fields=["metric", "pool"]),
            models.Index(fields=["metric", "model", "environment"]),
            models.Index(fields=["metric", "service"]),
        ]

    def __str__(self) -> str:
        return self.key

    @staticmethod
    def make_key(metric: str, ids: dict[str, int | None]) -> str:
        return metric + "".join(f"|{d[0]}{ids.get(d) or ''}" for d in DIMENSIONS)

    @property
    def metric_def(self):
        return METRICS[self.metric]


class Point(models.Model):
    """A raw sample: value of a series at a time. Unique per (series, ts): sending it again changes nothing.

    Kept for ``TELEMETRY_RAW_RETENTION_DAYS`` (the purge task deletes older ones); pages never read them.
    """

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="points")
    ts = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["series", "ts"], name="telemetry_point_series_ts")]
        indexes = [models.Index(fields=["ts"])]

    def __str__(self) -> str:
        return f"{self.series_id} @ {self.ts:%Y-%m-%d %H:%M:%S}: {self.value}"


class Rollup(models.Model):
    """Aggregate of a series' raw points over one UTC hour or day (``bucket_start`` .. + one grain).

    ``count``, ``sum``, ``min`` and ``max`` are always set; the mean is ``sum / count``. ``p50``, ``p95`` and
    ``p99`` are set for latency metrics only: percentiles of the bucket's samples (linear interpolation, as
    numpy's default). Percentiles cannot be merged: a day's p95 is computed from the day's raw points, never
    from its hours. Rebuilt for every bucket a write touches; hourly rollups are kept for
    ``TELEMETRY_HOURLY_RETENTION_DAYS``, daily ones for good.
    """

    class Grain(models.TextChoices):
        HOUR = "hour", "Hourly"
        DAY = "day", "Daily"

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="rollups")
    grain = models.CharField(max_length=4, choices=Grain.choices)
    bucket_start = models.DateTimeField()
    count = models.PositiveIntegerField()
    sum = models.FloatField()
    min = models.FloatField()
    max = models.FloatField()
    p50 = models.FloatField(null=True, blank=True)
    p95 = models.FloatField(null=True, blank=True)
    p99 = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["series", "grain", "bucket_start"], name="telemetry_rollup_unique")
        ]
        indexes = [models.Index(fields=["grain", "bucket_start"])]

    def __str__(self) -> str:
        return f"{self.series_id} {self.grain} {self.bucket_start:%Y-%m-%d %H:%M}"

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None


class TelemetryPull(models.Model):
    """One pull of a source, recorded like an import: what it asked for, what it stored, what went wrong.

    ``failed`` with ``retryable`` (Prometheus down, timed out or answering 5xx) is retried with backoff; the
    mappings' ``pulled_until`` only moves past chunks that were stored, so a retry loses nothing.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Succeeded with errors"
        FAILED = "failed", "Failed"

    source = models.ForeignKey(TelemetrySource, on_delete=models.CASCADE, related_name="pulls")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    attempt = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    requests = models.PositiveIntegerField(default=0)
    points_received = models.PositiveIntegerField(default=0)
    points_stored = models.PositiveIntegerField(default=0, help_text="New or changed points.")
    points_skipped = models.PositiveIntegerField(default=0, help_text="NaN/Inf samples and unmapped series.")
    series_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    retryable = models.BooleanField(default=False)

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["source", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.source} @ {self.started_at:%Y-%m-%d %H:%M:%S} ({self.status})"


class RetentionState(models.Model):
    """Singleton: how far raw points and hourly rollups have been purged.

    A point older than ``raw_purged_before`` is refused: its buckets were built from raw points that no longer
    exist, so adding it would make them wrong.
    """

    raw_purged_before = models.DateTimeField(null=True, blank=True)
    hourly_purged_before = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"raw purged before {self.raw_purged_before}, hourly before {self.hourly_purged_before}"

    @classmethod
    def get(cls) -> "RetentionState":
        state, _ = cls.objects.get_or_create(pk=1)
        return state


class ServiceUnitSource(TimeStampedModel):
    """Where a service's units of delivery come from when they are measured rather than entered.

    ``units = sum of the metric over the service's series / divisor``, e.g. request_count / 1000 for a service
    quoted per "1,000 predictions". The metric's series are those of the service itself and of its models;
    ``environment`` limits them (production, typically). Read with ``selectors.service_units``.
    """

    service = models.OneToOneField(Service, on_delete=models.CASCADE, related_name="unit_source")
    metric = models.CharField(
        max_length=40,
        choices=[c for c in METRIC_CHOICES if METRICS[c[0]].kind == Kind.COUNTER],
        default="request_count",
    )
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="Empty: all."
    )
    divisor = models.DecimalField(
        max_digits=18, decimal_places=6, default=Decimal("1"), validators=[MinValueValidator(Decimal("0.000001"))]
    )
    enabled = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.service}: {self.metric} / {self.divisor}"
