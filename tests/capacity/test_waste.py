"""Utilisation and capacity waste cost (KPIS.md section 2) against hand-computed values."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from apps.capacity.kpis import capacity_waste
from apps.capacity.selectors import pool_capacity, pools_for
from apps.core.periods import Period
from apps.kpis.registry import Direction, KpiFilters
from tests.capacity.factories import push
from tests.factories import EnvironmentFactory
from tests.telemetry.factories import CapacityPoolFactory, LocationFactory

pytestmark = pytest.mark.django_db
DAY = datetime(2026, 11, 2, tzinfo=UTC)
HOURS = [DAY + timedelta(hours=h) for h in range(24)]
PERIOD = Period("day", date(2026, 11, 2), date(2026, 11, 3))


@pytest.fixture
def pools():
    prod = EnvironmentFactory(slug="prod")
    gpu = CapacityPoolFactory(
        slug="gpu",
        resource_type="gpu",
        environment=prod,
        unit_price_per_hour=Decimal("2.00"),
        target_utilisation=Decimal("0.800"),
    )
    cpu = CapacityPoolFactory(
        slug="cpu",
        resource_type="cpu",
        environment=EnvironmentFactory(slug="dev", name="Dev", kind="dev"),
        unit_price_per_hour=Decimal("0.50"),
        target_utilisation=Decimal("1.000"),
    )
    # GPU pool: 10 GPUs all day; 4 in use for 12 hours, then 6 for 12 hours.
    push("gpu_provisioned", dict.fromkeys(HOURS, 10), pool="gpu")
    push("gpu_used", {h: 4 if h.hour < 12 else 6 for h in HOURS}, pool="gpu")
    # CPU pool: 100 cores, 25 used, reported by two nodes (two series at two locations) that add up.
    for code in ("node-a", "node-b"):
        LocationFactory(code=code)
        push("cpu_used", dict.fromkeys(HOURS, 12.5), pool="cpu", location=code)
    push("cpu_provisioned", dict.fromkeys(HOURS, 100), pool="cpu")
    return {"gpu": gpu, "cpu": cpu}


def test_utilisation_cost_and_waste_per_pool_match_the_definition(pools):
    caps = {c.pool.slug: c for c in pool_capacity(list(pools_for()), PERIOD.start, PERIOD.end)}
    gpu = caps["gpu"]
    # utilisation = (12 x 4 + 12 x 6) / (24 x 10) = 0.5; cost = 240 GPU-hours x 2.00 = 480;
    # waste = 480 x max(0, 1 - 0.5 / 0.8) = 480 x 0.375 = 180.
    assert gpu.utilisation == 0.5
    assert gpu.cost.amount == Decimal("480") and gpu.cost.basis == "capacity x unit price"
    assert gpu.waste_cost == Decimal("180")
    cpu = caps["cpu"]
    # 25 of 100 cores: cost 2,400 core-hours x 0.50 = 1,200; waste 1,200 x 0.75 = 900.
    assert (cpu.utilisation, cpu.cost.amount, cpu.waste_cost) == (0.25, Decimal("1200"), Decimal("900"))


def test_an_hour_with_only_one_of_used_and_provisioned_is_left_out(pools):
    push("gpu_provisioned", {DAY + timedelta(hours=30): 10}, pool="gpu")  # next day, no used sample
    push("gpu_used", {DAY - timedelta(hours=1): 10}, pool="gpu")  # day before, no provisioned sample
    two_days = pool_capacity([pools["gpu"]], date(2026, 11, 1), date(2026, 11, 4))[0]
    assert len(two_days.hours) == 24 and two_days.waste_cost == Decimal("180")


def test_the_headline_kpi_sums_the_pools_and_is_cut_by_the_filters(pools):
    kpi = capacity_waste(PERIOD, KpiFilters())
    assert kpi.value == Decimal("1080") and kpi.direction == Direction.DOWN_IS_GOOD
    assert kpi.previous is None  # no telemetry the day before
    assert kpi.sparkline[-1] == Decimal("1080") and len(kpi.sparkline) == 6
    assert kpi.url_name == "capacity:overview" and kpi.n == 2
    assert capacity_waste(PERIOD, KpiFilters(environment="dev")).value == Decimal("900")
    empty = capacity_waste(Period("day", date(2026, 10, 2), date(2026, 10, 3)), KpiFilters())
    assert empty.value is None and "no capacity telemetry" in empty.note


def test_daily_waste_is_each_day_priced_on_its_own(pools):
    push("gpu_provisioned", {h + timedelta(days=1): 10 for h in HOURS}, pool="gpu")
    push("gpu_used", {h + timedelta(days=1): 8 for h in HOURS}, pool="gpu")
    gpu = pool_capacity([pools["gpu"]], date(2026, 11, 2), date(2026, 11, 4))[0]
    days = gpu.days()
    # Day 2: 8 of 10 = 0.8 = target: no waste. Over both days: 0.65 -> 960 x (1 - 0.65 / 0.8) = 180.
    assert [(d.utilisation, d.waste_cost) for d in days] == [(0.5, Decimal("180")), (0.8, Decimal("0"))]
    assert gpu.utilisation == 0.65 and gpu.waste_cost == Decimal("180.0000")
