"""Shared setup: a model version in production with telemetry pushed through the telemetry push service, at
fixed past times so evaluations can be run at explicit moments."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from apps.telemetry.services import telemetry_push
from tests.factories import EnvironmentFactory
from tests.telemetry.factories import ModelVersionFactory

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)  # a Monday morning, long past


def hour(n: int) -> datetime:
    """The start of the nth hour after T0."""
    return T0 + timedelta(hours=n)


@pytest.fixture
def catalog(db):
    prod = EnvironmentFactory(slug="prod", name="Production", kind="prod")
    uat = EnvironmentFactory(slug="uat", name="UAT", kind="uat")
    v1 = ModelVersionFactory(model__slug="ranker", model__name="Ranker", version="2.1.0", stage="production")
    v2 = ModelVersionFactory(model=v1.model, version="2.2.0", stage="staging")
    return SimpleNamespace(prod=prod, uat=uat, model=v1.model, v1=v1, v2=v2)


def push(points: list[dict]) -> None:
    latest = max(datetime.fromisoformat(p["timestamp"]) for p in points)
    telemetry_push(points=points, now=latest + timedelta(hours=1))


def latency(
    start: datetime, values: list[float], *, version: str = "2.1.0", environment: str = "prod", model: str = "ranker"
) -> None:
    """One latency sample per 10 minutes from ``start``."""
    push(
        [
            {
                "metric": "latency_ms",
                "model": model,
                "version": version,
                "environment": environment,
                "timestamp": (start + timedelta(minutes=10 * i)).isoformat(),
                "value": v,
            }
            for i, v in enumerate(values)
        ]
    )


def requests_and_errors(
    start: datetime, requests: float, errors: float, *, version: str = "2.1.0", environment: str = "prod"
) -> None:
    stamp = start.isoformat()
    refs = {"model": "ranker", "version": version, "environment": environment, "timestamp": stamp}
    push([{"metric": "request_count", "value": requests, **refs}, {"metric": "error_count", "value": errors, **refs}])
