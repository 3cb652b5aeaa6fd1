"""Reads for capacity: provisioned and used capacity per pool from telemetry rollups, utilisation, waste cost
(KPIS.md section 2) and the latest forecasts.

Utilisation is time-weighted over hours: for each UTC hour in which a pool has both a used and a provisioned
hourly rollup, ``U(h)`` and ``P(h)`` are the hour's mean (summed over the pool's series of that metric, e.g. one
per node); ``utilisation = sum_h U(h) / sum_h P(h)``. Hours with only one of the two are left out, so a gap in one
feed cannot pass for idle or full capacity.
"""

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import F, FloatField, OuterRef, Q, QuerySet, Subquery, Sum

from apps.catalog.models import CapacityPool, Product, Service
from apps.core.periods import Period
from apps.kpis.registry import KpiFilters
from apps.telemetry.metrics import RESOURCE_UNIT, RESOURCE_UNITS, provisioned_metric, used_metric
from apps.telemetry.models import Rollup, ServiceUnitSource

from .costs import PoolCost, pool_cost
from .forecasting import utilisation, waste_cost
from .models import Forecast, ForecastRun, Grain

OK_RUNS = (ForecastRun.Status.SUCCEEDED, ForecastRun.Status.PARTIAL)
HOURS_PER_MONTH = 730  # 8,760 hours a year / 12: the month right-sizing savings are quoted for


def as_datetime(day: date | datetime) -> datetime:
    if isinstance(day, datetime):
        return day.astimezone(UTC)
    return datetime.combine(day, time.min, tzinfo=UTC)


def pools_for(filters: KpiFilters | None = None, *, environment: str = "", resource_type: str = "") -> QuerySet:
    """Pools cut by the KPI filters (service, team, environment, location, product) and the page's filters."""
    pools = CapacityPool.objects.select_related("environment", "location", "service")
    f = filters or KpiFilters()
    if f.service:
        pools = pools.filter(service__slug=f.service)
    if f.team:
        pools = pools.filter(service__team__slug=f.team)
    if f.environment or environment:
        pools = pools.filter(environment__slug=f.environment or environment)
    if f.location:
        pools = pools.filter(Q(location__code=f.location) | Q(location__parent__code=f.location))
    if f.product:
        service_id = Product.objects.filter(slug=f.product).values("service_id")[:1]
        pools = pools.filter(service_id=Subquery(service_id))
    if resource_type:
        pools = pools.filter(resource_type=resource_type)
    return pools.order_by("name")


def hourly_means(
    pool_ids: Iterable[int], metrics: Iterable[str], start: datetime, end: datetime
) -> dict[tuple[int, str], dict[datetime, float]]:
    """``{(pool id, metric): {hour: mean}}``: each hour's mean, summed over the pool's series of the metric."""
    rows = (
        Rollup.objects.filter(
            grain=Rollup.Grain.HOUR,
            bucket_start__gte=start,
            bucket_start__lt=end,
            series__pool_id__in=list(pool_ids),
            series__metric__in=list(metrics),
        )
        .values("series__pool_id", "series__metric", "bucket_start")
        .annotate(level=Sum(F("sum") / F("count"), output_field=FloatField()))
        .order_by()
    )
    found: dict[tuple[int, str], dict[datetime, float]] = defaultdict(dict)
    for row in rows:
        found[(row["series__pool_id"], row["series__metric"])][row["bucket_start"].astimezone(UTC)] = row["level"]
    return found


@dataclass
class PoolCapacity:
    """A pool's capacity over a window, for its primary resource type (``pool.resource_type``)."""

    pool: CapacityPool
    start: datetime
    end: datetime
    hours: list[datetime] = field(default_factory=list)  # hours with both used and provisioned
    used: list[float] = field(default_factory=list)  # U(h), aligned with hours
    provisioned: list[float] = field(default_factory=list)  # P(h)
    cost: PoolCost | None = None

    @property
    def has_data(self) -> bool:
        return bool(self.hours)

    @property
    def unit(self) -> str:
        return RESOURCE_UNITS[self.pool.resource_type]

    @property
    def day(self) -> date:
        """The UTC day a window starts on (for the days of ``days()``)."""
        return self.start.date()

    @property
    def unit_singular(self) -> str:
        return RESOURCE_UNIT[self.pool.resource_type]

    @property
    def target(self) -> float:
        return float(self.pool.target_utilisation)

    @property
    def used_unit_hours(self) -> float:
        return sum(self.used)

    @property
    def provisioned_unit_hours(self) -> float:
        return sum(self.provisioned)

    @property
    def utilisation(self) -> float | None:
        return utilisation(self.used, self.provisioned) if self.hours else None

    @property
    def waste_cost(self) -> Decimal | None:
        if self.cost is None or self.utilisation is None:
            return None
        return waste_cost(self.cost.amount, self.utilisation, self.target)

    @property
    def peak_used(self) -> float | None:
        return max(self.used) if self.used else None

    @property
    def last_provisioned(self) -> float | None:
        return self.provisioned[-1] if self.provisioned else None

    def days(self) -> list["PoolCapacity"]:
        """The window cut into UTC days, each priced and wasted on its own."""
        by_day: dict[date, PoolCapacity] = {}
        for hour, u, p in zip(self.hours, self.used, self.provisioned, strict=True):
            day = hour.date()
            if day not in by_day:
                day_start = as_datetime(day)
                by_day[day] = PoolCapacity(self.pool, day_start, day_start + timedelta(days=1))
            part = by_day[day]
            part.hours.append(hour)
            part.used.append(u)
            part.provisioned.append(p)
        for part in by_day.values():
            part.cost = pool_cost(
                part.pool, start=part.start, end=part.end, provisioned_unit_hours=part.provisioned_unit_hours
            )
        return [by_day[d] for d in sorted(by_day)]


def pool_capacity(pools: Sequence[CapacityPool], start: date | datetime, end: date | datetime) -> list[PoolCapacity]:
    """Utilisation, cost and waste cost of each pool over ``[start, end)`` (one query for all pools)."""
    start, end = as_datetime(start), as_datetime(end)
    return _capacities(pools, paired_hourly_means(pools, start, end), start, end)


def paired_hourly_means(
    pools: Sequence[CapacityPool], start: datetime, end: datetime
) -> dict[int, tuple[list[datetime], list[float], list[float]]]:
    """Per pool id: the hours of ``[start, end)`` with both a used and a provisioned mean of the pool's
    primary resource type, in order, and those means (each summed over the pool's series of the metric).

    One query, grouped by pool and hour in the database, that keeps only the hours having both.
    """
    if not pools:
        return {}
    used_q, provisioned_q = Q(pk__in=[]), Q(pk__in=[])
    by_type: dict[str, list[int]] = defaultdict(list)
    for pool in pools:
        by_type[pool.resource_type].append(pool.pk)
    for resource_type, ids in by_type.items():
        used_q |= Q(series__pool_id__in=ids, series__metric=used_metric(resource_type))
        provisioned_q |= Q(series__pool_id__in=ids, series__metric=provisioned_metric(resource_type))
    level = F("sum") / F("count")
    rows = (
        Rollup.objects.filter(
            used_q | provisioned_q, grain=Rollup.Grain.HOUR, bucket_start__gte=start, bucket_start__lt=end
        )
        .values("series__pool_id", "bucket_start")
        .annotate(
            used=Sum(level, filter=used_q, output_field=FloatField()),
            provisioned=Sum(level, filter=provisioned_q, output_field=FloatField()),
        )
        .filter(used__isnull=False, provisioned__isnull=False)
        .values_list("series__pool_id", "bucket_start", "used", "provisioned")
        .order_by("series__pool_id", "bucket_start")
    )
    if connection.vendor == "postgresql":
        # The driver already returns floats and aware datetimes: thousands of rows skip Django's converters.
        sql, params = rows.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    found: dict[int, tuple[list[datetime], list[float], list[float]]] = {}
    for pool_id, hour, used, provisioned in rows:
        hours, used_levels, provisioned_levels = found.setdefault(pool_id, ([], [], []))
        hours.append(hour if hour.tzinfo is UTC else hour.astimezone(UTC))
        used_levels.append(used)
        provisioned_levels.append(provisioned)
    return found


def _capacities(pools: Sequence[CapacityPool], paired: dict, start: datetime, end: datetime) -> list[PoolCapacity]:
    """The pools' capacity over ``[start, end)`` from :func:`paired_hourly_means` of that window or a wider one."""
    result = []
    for pool in pools:
        hours, used, provisioned = paired.get(pool.pk, ([], [], []))
        first, last = bisect_left(hours, start), bisect_left(hours, end)
        capacity = PoolCapacity(pool, start, end, hours[first:last], used[first:last], provisioned[first:last])
        if capacity.has_data:
            capacity.cost = pool_cost(
                pool, start=start, end=end, provisioned_unit_hours=capacity.provisioned_unit_hours
            )
        result.append(capacity)
    return result


def total_waste(capacities: Iterable[PoolCapacity]) -> Decimal | None:
    wastes = [w for w in (c.waste_cost for c in capacities) if w is not None]  # each computed once
    return sum(wastes, Decimal(0)) if wastes else None


def waste_by_period(pools: Sequence[CapacityPool], periods: Sequence[Period]) -> list[Decimal | None]:
    """Total waste cost of the pools in each period (each period computed on its own, as KPIS.md defines).

    The hourly means of all the periods come from one telemetry query; each period then takes its own hours.
    """
    if not periods:
        return []
    windows = [(as_datetime(p.start), as_datetime(p.end)) for p in periods]
    paired = paired_hourly_means(pools, min(w[0] for w in windows), max(w[1] for w in windows))
    return [total_waste(_capacities(pools, paired, start, end)) for start, end in windows]


def utilisation_by_resource(capacities: Iterable[PoolCapacity]) -> list[tuple[str, float, int]]:
    """(resource type label, utilisation over its pools, pools) for each resource type with data."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for c in capacities:
        if c.has_data:
            t = totals[c.pool.get_resource_type_display()]
            t[0] += c.used_unit_hours
            t[1] += c.provisioned_unit_hours
            t[2] += 1
    return [(label, u / p, int(n)) for label, (u, p, n) in sorted(totals.items()) if p]


def secondary_utilisation(pool: CapacityPool, start: date | datetime, end: date | datetime) -> list[dict]:
    """Utilisation of the pool's other resource types, where telemetry has them (e.g. memory of a CPU pool)."""
    start, end = as_datetime(start), as_datetime(end)
    others = [t for t in RESOURCE_UNITS if t != pool.resource_type]
    metrics = [m for t in others for m in (used_metric(t), provisioned_metric(t))]
    means = hourly_means([pool.pk], metrics, start, end)
    rows = []
    for rtype in others:
        used = means.get((pool.pk, used_metric(rtype)), {})
        provisioned = means.get((pool.pk, provisioned_metric(rtype)), {})
        hours = sorted(used.keys() & provisioned.keys())
        if hours:
            u, p = [used[h] for h in hours], [provisioned[h] for h in hours]
            rows.append(
                {
                    "resource": CapacityPool.ResourceType(rtype).label,
                    "unit": RESOURCE_UNITS[rtype],
                    "utilisation": utilisation(u, p),
                    "used_unit_hours": sum(u),
                    "provisioned_unit_hours": sum(p),
                }
            )
    return rows


def utilisation_heatmap(capacities: Sequence[PoolCapacity], start: date, end: date) -> dict:
    """Pools x days of utilisation (None where a pool has no data that day)."""
    days = [start + timedelta(days=i) for i in range((end - start).days)]
    rows = []
    for c in capacities:
        if not c.has_data:
            continue
        per_day = {d.start.date(): d.utilisation for d in c.days()}
        rows.append((c.pool.name, [per_day.get(day) for day in days]))
    return {"days": days, "rows": rows}


def daily_history(pool: CapacityPool, *, days: int = 90, end: datetime | None = None) -> list[dict]:
    """Per UTC day: peak hourly used and provisioned capacity, for the pool page's forecast chart."""
    from apps.telemetry.selectors import data_end

    end = end or data_end()
    if end is None:
        return []
    start = as_datetime((end - timedelta(days=days)).date())
    means = hourly_means(
        [pool.pk], [used_metric(pool.resource_type), provisioned_metric(pool.resource_type)], start, end
    )
    used = means.get((pool.pk, used_metric(pool.resource_type)), {})
    provisioned = means.get((pool.pk, provisioned_metric(pool.resource_type)), {})
    per_day: dict[date, dict] = {}
    for hour in sorted(used.keys() | provisioned.keys()):
        row = per_day.setdefault(hour.date(), {"at": hour.date(), "peak_used": None, "provisioned": None})
        for name, values in (("peak_used", used), ("provisioned", provisioned)):
            if hour in values:
                row[name] = values[hour] if row[name] is None else max(row[name], values[hour])
    return [per_day[d] for d in sorted(per_day)]


# Forecasts --------------------------------------------------------------------------------------------------


def latest_pool_forecasts(pools: Iterable[CapacityPool], grain: str = Grain.DAY) -> dict[int, Forecast]:
    """Each pool's newest forecast at ``grain`` from a finished run (one query for the ids, one for the rows)."""
    newest = (
        Forecast.objects.filter(pool=OuterRef("pk"), grain=grain, error="", run__status__in=OK_RUNS)
        .order_by("-run__finished_at", "-pk")
        .values("pk")[:1]
    )
    ids = (
        CapacityPool.objects.filter(pk__in=[p.pk for p in pools])
        .annotate(latest=Subquery(newest))
        .values_list("pk", "latest")
    )
    rows = Forecast.objects.select_related("run").in_bulk([fid for _, fid in ids if fid])
    return {pool_id: rows[fid] for pool_id, fid in ids if fid}


def latest_service_forecasts(grain: str = Grain.DAY) -> list[Forecast]:
    newest = (
        Forecast.objects.filter(service=OuterRef("pk"), grain=grain, error="", run__status__in=OK_RUNS)
        .order_by("-run__finished_at", "-pk")
        .values("pk")[:1]
    )
    ids = [fid for fid in Service.objects.annotate(latest=Subquery(newest)).values_list("latest", flat=True) if fid]
    return list(Forecast.objects.filter(pk__in=ids).select_related("run", "service").order_by("service__name"))


def recent_runs(limit: int = 5) -> list[ForecastRun]:
    return list(ForecastRun.objects.select_related("requested_by")[:limit])


@dataclass(frozen=True)
class RunProgress:
    run: ForecastRun
    chunks_done: int
    chunks_failed: int
    series_done: int

    @property
    def percent(self) -> int:
        if not self.run.chunks_total:
            return 100 if not self.run.is_active else 0
        return round(100 * (self.chunks_done + self.chunks_failed) / self.run.chunks_total)


def run_progress(run: ForecastRun) -> RunProgress:
    from django.db.models import Count

    from .models import ForecastChunk

    agg = run.chunks.aggregate(
        done=Count("pk", filter=Q(status=ForecastChunk.Status.DONE)),
        failed=Count("pk", filter=Q(status=ForecastChunk.Status.FAILED)),
        series=Sum("series_count", filter=Q(status=ForecastChunk.Status.DONE)),
    )
    return RunProgress(run, agg["done"], agg["failed"], agg["series"] or 0)


def measured_services() -> QuerySet[Service]:
    """Services whose units come from telemetry (an enabled unit source)."""
    return Service.objects.filter(pk__in=ServiceUnitSource.objects.filter(enabled=True).values("service_id")).order_by(
        "name"
    )


# Pages ------------------------------------------------------------------------------------------------------


@dataclass
class PoolRow:
    """A pool on the overview: its capacity over the period and its latest daily forecast."""

    capacity: PoolCapacity
    forecast: Forecast | None

    @property
    def pool(self) -> CapacityPool:
        return self.capacity.pool


@dataclass
class CapacityOverview:
    period: Period
    rows: list[PoolRow]
    heatmap: dict
    by_resource: list[tuple[str, float, int]]

    @property
    def with_data(self) -> list[PoolRow]:
        return [r for r in self.rows if r.capacity.has_data]

    @property
    def nearest_exhaustion(self) -> list[PoolRow]:
        rows = [r for r in self.rows if r.forecast and r.forecast.exhaustion_days is not None]
        return sorted(rows, key=lambda r: r.forecast.exhaustion_days)

    @property
    def savings(self) -> list[PoolRow]:
        rows = [r for r in self.rows if r.forecast and r.forecast.monthly_saving]
        return sorted(rows, key=lambda r: r.forecast.monthly_saving, reverse=True)

    @property
    def savings_total(self) -> Decimal | None:
        return sum((r.forecast.monthly_saving for r in self.savings), Decimal(0)) if self.savings else None

    @property
    def waste_total(self) -> Decimal | None:
        return total_waste(r.capacity for r in self.rows)


def capacity_overview(period: Period, *, environment: str = "", resource_type: str = "") -> CapacityOverview:
    pools = list(pools_for(environment=environment, resource_type=resource_type))
    capacities = pool_capacity(pools, period.start, period.end)
    forecasts = latest_pool_forecasts(pools, Grain.DAY)
    rows = [PoolRow(c, forecasts.get(c.pool.pk)) for c in capacities]
    return CapacityOverview(
        period=period,
        rows=rows,
        heatmap=utilisation_heatmap(capacities, period.start, period.end),
        by_resource=utilisation_by_resource(capacities),
    )


def pool_history(pool: CapacityPool, grain: str) -> list[dict]:
    """The pool page's history before the forecast: daily peaks over 90 days, or hourly means over 14 days."""
    if grain == Grain.DAY:
        return daily_history(pool, days=90)
    from apps.telemetry.selectors import data_end

    end = data_end()
    if end is None:
        return []
    start = end - timedelta(days=14)
    means = hourly_means(
        [pool.pk], [used_metric(pool.resource_type), provisioned_metric(pool.resource_type)], start, end
    )
    used = means.get((pool.pk, used_metric(pool.resource_type)), {})
    provisioned = means.get((pool.pk, provisioned_metric(pool.resource_type)), {})
    return [
        {"at": hour, "peak_used": used.get(hour), "provisioned": provisioned.get(hour)}
        for hour in sorted(used.keys() | provisioned.keys())
    ]
