from datetime import UTC, datetime

from apps.capacity.models import ForecastRun
from apps.catalog.models import CapacityPool
from tests.factories import EnvironmentFactory

from . import ADM, ANON, API_READ, EXE, PAGE, PM, Route

SLUG = "matrix-capacity-pool"


def setup(users) -> None:
    env = EnvironmentFactory(slug="matrix-env", name="Matrix env")
    CapacityPool.objects.create(slug=SLUG, name="Matrix capacity pool", resource_type="gpu", environment=env)
    ForecastRun.objects.create(
        kind="pool_demand",
        grain="day",
        data_start=datetime(2026, 1, 1, tzinfo=UTC),
        data_end=datetime(2026, 11, 1, tzinfo=UTC),
        horizon=30,
    )


def _pool() -> dict:
    return {"slug": SLUG}


def _run() -> dict:
    return {"pk": ForecastRun.objects.get().pk}


MATRIX = [
    # capacity:overview itself is listed in core.py with every KPI page.
    Route("capacity:overview-csv", "get", PAGE),
    Route("capacity:pool", "get", PAGE, kwargs=_pool),
    Route("capacity:pool-csv", "get", PAGE, kwargs=_pool),
    Route("capacity:run", "get", PAGE, kwargs=_run),
    # Starting forecast runs is for admins; they are sent back to the capacity page.
    Route("capacity:run-start", "post", {ANON: 302, EXE: 403, PM: 403, ADM: 302}),
    Route("capacity-pools", "get", API_READ),
    Route("capacity-pool-detail", "get", API_READ, kwargs=_pool),
    Route("capacity-forecast-runs", "get", API_READ),
    Route("capacity-forecast-runs", "post", {ANON: 401, EXE: 403, PM: 403, ADM: 202}, json=True),
    Route("capacity-forecast-run", "get", API_READ, kwargs=_run),
]
