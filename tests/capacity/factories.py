"""Capacity data for tests, sent through the telemetry push service like any real source."""

from datetime import datetime

from apps.telemetry.services import telemetry_push


def push(metric: str, values: dict[datetime, float], *, now: datetime | None = None, **refs) -> None:
    points = [{"metric": metric, "timestamp": ts.isoformat(), "value": v, **refs} for ts, v in values.items()]
    for start in range(0, len(points), 10_000):
        telemetry_push(points=points[start : start + 10_000], now=now)
