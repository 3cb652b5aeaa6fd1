"""Reads of telemetry. Pages, the API and other apps (capacity, unit cost, SLA alerts) read rollups through here.

Series identity is the metric plus model / version / environment / service / pool / location; a
:class:`SeriesScope` narrows any of them (None means "any"). Rollups come per UTC hour or day.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import F, Max, Q, QuerySet, Sum

from apps.catalog.models import CapacityPool, Environment, Location, MLModel, ModelVersion, Service

from .models import Rollup, Series, ServiceUnitSource, TelemetryPull, TelemetrySource

LATENCY_LEVELS = ("p50", "p95", "p99")


@dataclass(frozen=True)
class SeriesScope:
    """Which series to read: each field is a catalog object, its pk, or None for any value."""

    model: MLModel | int | None = None
    version: ModelVersion | int | None = None
    environment: Environment | int | None = None
    service: Service | int | None = None
    pool: CapacityPool | int | None = None
    location: Location | int | None = None

    def q(self, prefix: str = "") -> Q:
        q = Q()
        for name in ("model", "version", "environment", "service", "pool", "location"):
            value = getattr(self, name)
            if value is not None:
                q &= Q(**{f"{prefix}{name}": value})
        return q


def _as_datetime(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time.min, tzinfo=UTC)


def series_rollups(
    *,
    metric: str,
    scope: SeriesScope | None = None,
    start: date | datetime,
    end: date | datetime,
    grain: str = Rollup.Grain.HOUR,
) -> QuerySet[Rollup]:
    """Rollups of every series of ``metric`` within ``scope``, for buckets starting in ``[start, end)``.

    One row per series and bucket (``series`` is selected with its catalog references), ordered by series then
    time. Fields: count, sum, min, max, mean (property), and p50/p95/p99 for latency metrics. Percentiles of
    different series cannot be combined exactly: compare series one by one.
    """
    scope = scope or SeriesScope()
    return (
        Rollup.objects.filter(
            scope.q("series__"),
            series__metric=metric,
            grain=grain,
            bucket_start__gte=_as_datetime(start),
            bucket_start__lt=_as_datetime(end),
        )
        .select_related("series__model", "series__version", "series__environment", "series__service", "series__pool")
        .order_by("series_id", "bucket_start")
    )


def _day_aligned(moment: datetime) -> bool:
    return moment.hour == moment.minute == moment.second == moment.microsecond == 0


def service_units(service: Service, start: date | datetime, end: date | datetime) -> Decimal | None:
    """Units of delivery of ``service`` in ``[start, end)`` measured from telemetry, or None when the service has
    no enabled unit source or no telemetry in the range.

    ``units = sum of the unit source's metric over the service's series (its models' included) / divisor``,
    from daily rollups when both ends fall on UTC midnight, hourly ones otherwise.
    """
    unit_source = ServiceUnitSource.objects.filter(service=service, enabled=True).first()
    if unit_source is None:
        return None
    start_dt, end_dt = _as_datetime(start), _as_datetime(end)
    grain = Rollup.Grain.DAY if _day_aligned(start_dt) and _day_aligned(end_dt) else Rollup.Grain.HOUR
    rows = Rollup.objects.filter(
        series__metric=unit_source.metric,
        series__service=service,
        grain=grain,
        bucket_start__gte=start_dt,
        bucket_start__lt=end_dt,
    )
    if unit_source.environment_id:
        rows = rows.filter(series__environment_id=unit_source.environment_id)
    total = rows.aggregate(total=Sum("sum"))["total"]
    if total is None:
        return None
    return Decimal(repr(total)) / unit_source.divisor


# The model telemetry page -----------------------------------------------------------------------------------

WORKLOAD_METRICS = ("request_count", "error_count", "latency_ms")


@dataclass(frozen=True)
class WorkloadKey:
    model_slug: str
    model_name: str
    version: str  # "" when the telemetry names no version
    environment: str  # environment slug, "" when not named

    @property
    def label(self) -> str:
        parts = [self.model_name, self.version or "all versions", self.environment or "all environments"]
        return " · ".join(parts)

    @property
    def short_label(self) -> str:
        return f"{self.version or 'any'} · {self.environment or 'any'}"


@dataclass
class WorkloadBucket:
    start: datetime
    requests: float = 0.0
    errors: float = 0.0
    latency_samples: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


@dataclass
class WorkloadSeries:
    key: WorkloadKey
    seconds_per_bucket: int
    buckets: dict[datetime, WorkloadBucket] = field(default_factory=dict)

    def bucket(self, start: datetime) -> WorkloadBucket:
        if start not in self.buckets:
            self.buckets[start] = WorkloadBucket(start)
        return self.buckets[start]

    @property
    def ordered(self) -> list[WorkloadBucket]:
        return [self.buckets[k] for k in sorted(self.buckets)]

    @property
    def requests(self) -> float:
        return sum(b.requests for b in self.buckets.values())

    @property
    def errors(self) -> float:
        return sum(b.errors for b in self.buckets.values())

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def throughput(self) -> float | None:
        """Mean requests per second over the buckets that have data."""
        if not self.buckets:
            return None
        return self.requests / (len(self.buckets) * self.seconds_per_bucket)

    def latency(self, level: str) -> float | None:
        """Sample-weighted mean of the buckets' percentile (e.g. the typical daily p95)."""
        pairs = [(getattr(b, level), b.latency_samples) for b in self.buckets.values() if getattr(b, level) is not None]
        weight = sum(n for _, n in pairs)
        return sum(v * n for v, n in pairs) / weight if weight else None

    @property
    def latency_p50(self) -> float | None:
        return self.latency("p50")

    @property
    def latency_p95(self) -> float | None:
        return self.latency("p95")

    @property
    def latency_p99(self) -> float | None:
        return self.latency("p99")


def telemetry_grain(start: date, end: date) -> str:
    """Hourly buckets for up to two weeks, daily beyond: enough points to read, few enough to draw."""
    return Rollup.Grain.HOUR if (end - start).days <= 14 else Rollup.Grain.DAY


def workload_telemetry(
    *,
    start: date,
    end: date,
    grain: str,
    model: MLModel | None = None,
    environment: Environment | None = None,
    version: ModelVersion | None = None,
) -> list[WorkloadSeries]:
    """Requests, errors and latency percentiles per model x version x environment and bucket, from rollups.

    Several series of one workload (e.g. per location) are added up; their percentiles are averaged weighted by
    sample count (an approximation, since percentiles do not add).
    """
    scope = SeriesScope(model=model, environment=environment, version=version)
    rows = (
        Rollup.objects.filter(
            scope.q("series__"),
            series__metric__in=WORKLOAD_METRICS,
            series__model__isnull=False,
            grain=grain,
            bucket_start__gte=_as_datetime(start),
            bucket_start__lt=_as_datetime(end),
        )
        .values(
            "series__metric",
            "series__model__slug",
            "series__model__name",
            "series__version__version",
            "series__environment__slug",
            "bucket_start",
        )
        .annotate(
            total=Sum("sum"),
            n=Sum("count"),
            w50=Sum(F("p50") * F("count")),
            w95=Sum(F("p95") * F("count")),
            w99=Sum(F("p99") * F("count")),
        )
        .order_by()
    )
    seconds = 3600 if grain == Rollup.Grain.HOUR else 86400
    found: dict[WorkloadKey, WorkloadSeries] = {}
    for row in rows:
        key = WorkloadKey(
            row["series__model__slug"],
            row["series__model__name"],
            row["series__version__version"] or "",
            row["series__environment__slug"] or "",
        )
        series = found.setdefault(key, WorkloadSeries(key, seconds))
        bucket = series.bucket(row["bucket_start"].astimezone(UTC))
        match row["series__metric"]:
            case "request_count":
                bucket.requests += row["total"]
            case "error_count":
                bucket.errors += row["total"]
            case "latency_ms":
                bucket.latency_samples = row["n"]
                if row["w50"] is not None:
                    bucket.p50, bucket.p95, bucket.p99 = (row[w] / row["n"] for w in ("w50", "w95", "w99"))
    return sorted(found.values(), key=lambda s: (s.key.model_name, s.key.version, s.key.environment))


def models_with_telemetry() -> QuerySet[MLModel]:
    ids = Series.objects.filter(metric__in=WORKLOAD_METRICS, model__isnull=False).values("model_id")
    return MLModel.objects.filter(pk__in=ids).order_by("name")


def environments_with_telemetry() -> QuerySet[Environment]:
    ids = Series.objects.filter(metric__in=WORKLOAD_METRICS, model__isnull=False).values("environment_id")
    return Environment.objects.filter(pk__in=ids).order_by("name")


def latest_pulls() -> list[dict[str, Any]]:
    """Each source with its last pull, for the models page (no URL or credential details)."""
    sources = TelemetrySource.objects.annotate(last_started=Max("pulls__started_at")).order_by("name")
    last = {
        p.source_id: p
        for p in TelemetryPull.objects.filter(
            started_at__in=[s.last_started for s in sources if s.last_started]
        ).order_by("started_at")
    }
    return [{"source": s, "pull": last.get(s.pk)} for s in sources]


def pull_list() -> QuerySet[TelemetryPull]:
    return TelemetryPull.objects.select_related("source")


def data_end() -> datetime | None:
    """The end of the newest hourly rollup: where telemetry currently stops."""
    last = Rollup.objects.filter(grain=Rollup.Grain.HOUR).aggregate(last=Max("bucket_start"))["last"]
    return last + timedelta(hours=1) if last else None
