"""Demo telemetry for Meridian Markets: 90 days of hourly model and capacity telemetry, sent through the push API's
service function exactly as a batch job's POST /api/v1/telemetry/ would be.

Store-driven services follow trading hours (longer on Saturdays, short on Sundays); batch models run at night;
the A10G GPU fleet grows toward exhaustion; the data-centre VMware cluster is heavily over-provisioned; the dev
cluster idles outside office hours. Values are a deterministic function of the series and the hour, so running
the demo again within the hour stores nothing new, and later only adds the new hours (trends are anchored on the
current hour, so older points may be updated in place, never duplicated).
"""

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from apps.catalog.models import Environment, Service

from .models import RetentionState, ServiceUnitSource
from .push import MAX_POINTS_PER_BATCH
from .services import telemetry_push

DAYS = 90


def noise(key: int, i: int) -> float:
    """A repeatable pseudo-random number in [-1, 1) for series ``key`` at step ``i``."""
    x = (i * 2654435761 + key * 40503 + 12345) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 2246822519) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * 3266489917) & 0xFFFFFFFF
    x ^= x >> 16
    return x / 2**31 - 1


def store_activity(ts: datetime) -> float:
    """Share of peak trading activity across the estate at ``ts`` (UTC ~ UK time), about 0.04 .. 1.4."""
    hour, day = ts.hour + ts.minute / 60, ts.weekday()
    opens, closes = (10, 16) if day == 6 else (7, 22)
    if not opens <= hour < closes:
        return 0.04
    x = (hour - opens) / (closes - opens)
    shape = 0.35 + 0.65 * math.sin(math.pi * x) ** 1.5 + 0.25 * math.exp(-(((hour - 17.5) / 1.2) ** 2))
    return shape * {5: 1.25, 6: 1.1}.get(day, 1.0)


def batch_window(ts: datetime, start: int, end: int) -> float:
    return 1.0 if start <= ts.hour < end else 0.0


# (model, version, environment, first day, requests per hour, latency ms, error rate, load shape)
WORKLOADS: list[tuple[str, str, str, int, float, float, float, Callable[[datetime], float]]] = [
    ("promo-ranker", "2.1.0", "prod", 0, 170_000, 38, 0.002, store_activity),
    ("promo-ranker", "2.2.0", "prod", DAYS - 21, 9_000, 52, 0.006, store_activity),
    ("shelf-gap-detector", "3.0.1", "prod", 0, 110_000, 118, 0.005, store_activity),
    ("shelf-gap-detector", "3.1.0", "uat", 30, 2_400, 109, 0.009, lambda ts: 0.5 + 0.5 * batch_window(ts, 8, 18)),
    ("cart-item-recogniser", "0.9.4", "prod", 0, 240_000, 64, 0.003, store_activity),
    ("price-elasticity", "1.4.2", "prod", 0, 2_500_000, 7.5, 0.0005, lambda ts: batch_window(ts, 1, 4)),
    ("price-elasticity", "1.5.0", "prod", DAYS - 35, 250_000, 9.4, 0.001, lambda ts: batch_window(ts, 1, 4)),
    ("demand-forecast", "5.0.0", "prod", 0, 1_900_000, 11.8, 0.0008, lambda ts: batch_window(ts, 5, 6)),
]


def _workload_points(hours: list[datetime], first: int, end: datetime) -> Iterator[dict]:
    for key, (model, version, env, start_day, volume, latency, errors, shape) in enumerate(WORKLOADS, start=1):
        refs = {"model": model, "version": version, "environment": env}
        since = end - timedelta(days=DAYS - start_day)
        for i, ts in enumerate(hours):
            step = first + i
            if ts < since:
                continue
            load = shape(ts)
            growth = 1 + 0.004 * (ts - end).total_seconds() / 86_400 / 30  # about 0.4 % a month
            requests = round(volume * load * growth * (1 + 0.06 * noise(key, step)))
            incident = 1 + 6 * (noise(key + 50, step // 6) > 0.985)  # now and then a bad few hours
            failed = round(requests * errors * incident * (1 + 0.3 * noise(key + 100, step)))
            stamp = ts.timestamp()
            yield {"metric": "request_count", "timestamp": stamp, "value": requests, **refs}
            yield {"metric": "error_count", "timestamp": stamp, "value": failed, **refs}
            if requests:
                for q in range(4):
                    # Latency rises with load, with a long tail.
                    tail = 1 + 0.9 * max(0.0, noise(key + 200 + q, step)) ** 6
                    value = latency * (1 + 0.35 * min(load, 1.4)) * tail * (1 + 0.08 * noise(key + 300 + q, step))
                    yield {"metric": "latency_ms", "timestamp": stamp + 900 * q, "value": round(value, 3), **refs}


def _gpu_fleet(ts: datetime, day: float, step: int) -> tuple[float, float]:
    used = 6.0 + 5.5 * day / DAYS + 2.6 * store_activity(ts) + 0.3 * noise(11, step)
    return max(0.0, used), 16.0


# pool slug -> (resource, function(ts, day index, step) -> (used, provisioned))
POOLS: dict[str, list[tuple[str, Callable[[datetime, float, int], tuple[float, float]]]]] = {
    "eks-prod-cpu": [
        ("cpu", lambda ts, d, s: (18 + 40 * store_activity(ts) + 2 * noise(21, s), 96.0 if d < 60 else 112.0)),
        ("memory", lambda ts, d, s: (150 + 110 * store_activity(ts) + 6 * noise(22, s), 384.0 if d < 60 else 448.0)),
    ],
    "gpu-a10g-prod": [("gpu", _gpu_fleet)],
    "aks-vision-gpu": [("gpu", lambda ts, d, s: (2.6 + 3.0 * store_activity(ts) + 0.25 * noise(31, s), 8.0))],
    "dc-vmware-cpu": [
        (
            "cpu",
            lambda ts, d, s: (
                32 + 38 * batch_window(ts, 1, 6) + 4 * store_activity(ts) + 3 * noise(41, s),
                256.0,
            ),
        )
    ],
    "store-edge-tier": [  # one edge node per store, sized for the Saturday peak
        ("nodes", lambda ts, d, s: (1900 * (0.38 + 0.38 * store_activity(ts)) * (1 + 0.02 * noise(51, s)), 1900.0))
    ],
    "eks-dev-cpu": [
        (
            "cpu",
            lambda ts, d, s: (
                (22 + 4 * noise(61, s)) if ts.weekday() < 5 and 8 <= ts.hour < 19 else 3 + noise(62, s),
                48.0,
            ),
        )
    ],
}


def _pool_points(hours: list[datetime], first: int, end: datetime) -> Iterator[dict]:
    day0 = end - timedelta(days=DAYS)
    for pool, resources in POOLS.items():
        for resource, fn in resources:
            for i, ts in enumerate(hours):
                used, provisioned = fn(ts, (ts - day0).total_seconds() / 86_400, first + i)
                stamp = ts.timestamp()
                yield {"metric": f"{resource}_used", "pool": pool, "timestamp": stamp, "value": round(used, 4)}
                yield {"metric": f"{resource}_provisioned", "pool": pool, "timestamp": stamp, "value": provisioned}


def _unit_points(hours: list[datetime], first: int) -> Iterator[dict]:
    for i, ts in enumerate(hours):
        step = first + i
        stamp = ts.timestamp()
        checkouts = round(1900 * 38 * store_activity(ts) * (1 + 0.05 * noise(71, step)))
        yield {"metric": "units", "service": "smart-cart", "timestamp": stamp, "value": checkouts}
        inference = round(560_000 * store_activity(ts) * (1 + 0.05 * noise(72, step)) + 200_000)
        yield {"metric": "units", "service": "ml-platform", "timestamp": stamp, "value": inference}
        if ts.hour == 23:  # one store-day per store that ran shelf vision today
            store_days = 1900 - round(6 * (1 + noise(73, step)))
            yield {"metric": "units", "service": "shelf-vision", "timestamp": stamp, "value": store_days}


UNIT_SOURCES = [
    ("price-forecast", "request_count", "prod", "1000"),
    ("promotions", "request_count", "prod", "1000"),
    ("shelf-vision", "units", None, "1"),
    ("smart-cart", "units", None, "1"),
    ("ml-platform", "units", None, "1000"),
]


def _configure_unit_sources() -> None:
    services = {s.slug: s for s in Service.objects.all()}
    environments = {e.slug: e for e in Environment.objects.all()}
    for slug, metric, env, divisor in UNIT_SOURCES:
        if slug in services:
            ServiceUnitSource.objects.update_or_create(
                service=services[slug],
                defaults={"metric": metric, "environment": environments.get(env), "divisor": Decimal(divisor)},
            )


def load(*, log) -> None:
    now = timezone.now()
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DAYS)
    purged = RetentionState.get().raw_purged_before
    if purged and purged > start:
        start = purged  # raw telemetry before this is final; the demo only adds what can still be added
    hours = [start + timedelta(hours=h) for h in range(int((end - start).total_seconds() // 3600))]
    first = int(start.timestamp() // 3600)
    _configure_unit_sources()
    totals = {"received": 0, "created": 0, "unchanged": 0, "updated": 0}
    batch: list[dict] = []

    def send() -> None:
        result = telemetry_push(points=batch, now=now)
        for key in totals:
            totals[key] += getattr(result, key)
        batch.clear()

    streams = [_workload_points(hours, first, end), _pool_points(hours, first, end), _unit_points(hours, first)]
    for stream in streams:
        for point in stream:
            batch.append(point)
            if len(batch) == MAX_POINTS_PER_BATCH:
                send()
    if batch:
        send()
    log(
        f"telemetry: {totals['received']:,} points over {len(hours) // 24} days pushed "
        f"({totals['created']:,} new, {totals['unchanged']:,} already stored, {totals['updated']:,} changed)"
    )
