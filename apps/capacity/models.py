"""Forecast runs and their results. Capacity itself (provisioned and used, per pool and resource type) lives in
telemetry series (``<type>_used`` / ``<type>_provisioned`` with the pool named); this app reads their rollups.
"""

from django.conf import settings
from django.db import models

from apps.catalog.models import CapacityPool, Service
from apps.core.models import TimeStampedModel

MONEY = {"max_digits": 38, "decimal_places": 18}


class Grain(models.TextChoices):
    DAY = "day", "Daily"
    HOUR = "hour", "Hourly"


class ForecastRun(TimeStampedModel):
    """One forecasting run: every pool's demand (or every measured service's units) at one grain.

    The run is split into chunks of ``chunk_size`` series, each a Celery task on the forecasts queue, so
    thousands of series spread over the workers; progress is the share of chunks done. ``data_start`` ..
    ``data_end`` is the window of history read, ``settings`` the model settings used (horizon, interval level,
    backtest origins, the boosting parameters and library versions).
    """

    class Kind(models.TextChoices):
        POOL_DEMAND = "pool_demand", "Capacity pool demand"
        SERVICE_UNITS = "service_units", "Service units"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Succeeded with errors"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    grain = models.CharField(max_length=4, choices=Grain.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    data_start = models.DateTimeField()
    data_end = models.DateTimeField()
    horizon = models.PositiveIntegerField(help_text="Steps forecast (days or hours).")
    level = models.FloatField(default=0.8, help_text="Nominal coverage of the prediction interval.")
    backtest_origins = models.PositiveIntegerField(default=3)
    chunk_size = models.PositiveIntegerField(default=50)
    series_total = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    settings = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.grain}) {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)


class ForecastChunk(models.Model):
    """A slice of a run's series, forecast by one task. Claimed atomically, so a re-delivered task is a no-op."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(ForecastRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    keys = models.JSONField(help_text="Pool or service ids.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    claimed_by = models.CharField(
        max_length=64, blank=True, help_text="Id of the task that claimed the chunk (a re-delivery has the same id)."
    )
    series_count = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="capacity_chunk_unique")]

    def __str__(self) -> str:
        return f"run {self.run_id} chunk {self.index} ({self.status})"


class Forecast(models.Model):
    """The forecast of one series (a pool's demand or a service's units) in one run, with its backtest error
    and, for pools, what it means for capacity.

    ``points`` holds ``[timestamp ISO, point, lower, upper]`` per future step. The backtest is rolling-origin
    (``apps.capacity.forecasting.backtest``): ``backtest_mase`` is the model's MASE, ``backtest_ratio`` that
    over the seasonal-naive forecast's MASE (below 1 beats it), ``backtest_coverage`` the share of actuals inside
    the interval (nominal: the run's level). ``exhaustion_days`` is the first day of the horizon on which the
    upper bound reaches ``provisioned``; ``monthly_saving`` the cost of capacity above the forecast peak /
    target utilisation over 730 hours. ``error`` says why a series got no forecast.
    """

    run = models.ForeignKey(ForecastRun, on_delete=models.CASCADE, related_name="forecasts")
    pool = models.ForeignKey(CapacityPool, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    metric = models.CharField(max_length=40)
    grain = models.CharField(max_length=4, choices=Grain.choices)
    method = models.CharField(max_length=40, blank=True)
    history_start = models.DateTimeField(null=True, blank=True)
    history_end = models.DateTimeField(null=True, blank=True)
    observations = models.PositiveIntegerField(default=0)
    settings = models.JSONField(default=dict, blank=True)
    points = models.JSONField(default=list, blank=True)
    backtest_mase = models.FloatField(null=True, blank=True)
    backtest_mase_naive = models.FloatField(null=True, blank=True)
    backtest_ratio = models.FloatField(null=True, blank=True)
    backtest_coverage = models.FloatField(null=True, blank=True)
    backtest_width = models.FloatField(null=True, blank=True)
    backtest_origins = models.PositiveIntegerField(default=0)
    provisioned = models.FloatField(null=True, blank=True)
    exhaustion_days = models.PositiveIntegerField(null=True, blank=True)
    exhaustion_date = models.DateField(null=True, blank=True)
    peak_demand = models.FloatField(null=True, blank=True)
    recommended_capacity = models.FloatField(null=True, blank=True)
    excess_capacity = models.FloatField(null=True, blank=True)
    monthly_saving = models.DecimalField(**MONEY, null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "pk"]
        indexes = [models.Index(fields=["pool", "grain"]), models.Index(fields=["service", "grain"])]

    def __str__(self) -> str:
        return f"{self.pool or self.service} {self.metric} ({self.grain})"

    @property
    def level(self) -> float:
        return self.run.level

    @property
    def point_total(self) -> float:
        """Sum of the point forecast over the horizon (e.g. a service's units over the next 30 days)."""
        return sum(p[1] for p in self.points)
