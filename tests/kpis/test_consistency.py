"""One figure, one function: the overview's tiles equal the detail pages' and the API's figures."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from apps.billing.models import BillingSource, CostRollup
from tests.factories import EnvironmentFactory, ServiceFactory

pytestmark = pytest.mark.django_db

OCTOBER = [  # (service, environment, day, effective cost)
    ("alpha", "prod", date(2026, 10, 3), Decimal("120.50")),
    ("alpha", "dev", date(2026, 10, 4), Decimal("30.25")),
    ("beta", "prod", date(2026, 10, 20), Decimal("200.00")),
    (None, "prod", date(2026, 10, 21), Decimal("49.25")),  # unallocated: still cloud cost
]
SEPTEMBER = [
    ("alpha", "prod", date(2026, 9, 10), Decimal("100.00")),
    ("beta", "prod", date(2026, 9, 11), Decimal("50")),
]


@pytest.fixture
def billing():
    services = {"alpha": ServiceFactory(slug="alpha"), "beta": ServiceFactory(slug="beta")}
    envs = {"prod": EnvironmentFactory(slug="prod", kind="prod"), "dev": EnvironmentFactory(slug="dev", kind="dev")}
    source = BillingSource.objects.create(name="aws")
    for service, env, day, cost in OCTOBER + SEPTEMBER:
        CostRollup.objects.create(
            day=day,
            source=source,
            billing_period_start=day.replace(day=1),
            service=services.get(service),
            environment=envs[env],
            provider="AWS",
            currency="USD",
            billed_cost=cost,
            effective_cost=cost,
        )


def _tiles(client, query: str) -> dict:
    return {t.key: t for t in client.get(f"/?{query}").context["tiles"]}


def _api(client, query: str) -> dict:
    return {k["key"]: k for k in client.get(f"/api/v1/kpis/?{query}").json()["kpis"]}


def test_cloud_cost_is_the_same_on_the_overview_the_explorer_and_the_api(exec_client, billing):
    expected = sum(c for *_, c in OCTOBER)  # 400.00, by hand
    previous = sum(c for *_, c in SEPTEMBER)
    tile = _tiles(exec_client, "period=2026-10")["cloud_cost"]
    api = _api(exec_client, "period=2026-10")["cloud_cost"]
    page = exec_client.get("/costs/explorer/?period=2026-10").context["kpi"]
    assert tile.value == page.value == Decimal(api["value"]) == expected == Decimal("400.00")
    assert tile.previous == page.previous == Decimal(api["previous"]) == previous
    assert tile.change == Decimal(api["change"]) == expected - previous

    alpha = sum(c for s, _, _, c in OCTOBER if s == "alpha")  # the same figure cut by a service filter
    assert _tiles(exec_client, "period=2026-10&service=alpha")["cloud_cost"].value == alpha
    assert Decimal(_api(exec_client, "period=2026-10&service=alpha")["cloud_cost"]["value"]) == alpha
    dev = sum(c for _, e, _, c in OCTOBER if e == "dev")
    assert _tiles(exec_client, "period=2026-10&environment=dev")["cloud_cost"].value == dev


@pytest.mark.parametrize(
    ("key", "page_url"),
    [("capacity_waste", "/capacity/?period=2026-10"), ("cost_per_feature", "/functionality/?period=2026-10")],
)
def test_other_headlines_match_their_pages(exec_client, billing, key, page_url):
    tile = _tiles(exec_client, "period=2026-10")[key]
    page = exec_client.get(page_url).context.get("kpi")  # a page without its data shows its empty state
    api = _api(exec_client, "period=2026-10")[key]
    assert tile.value == (page.value if page is not None else None)
    assert (Decimal(api["value"]) if api["value"] is not None else None) == tile.value


# --- Sparklines: each KPI's series comes from one grouped query; every point equals that period's figure ----


def test_cloud_cost_sparkline_is_each_months_total_as_the_explorer_shows_it(exec_client, billing):
    tile = _tiles(exec_client, "period=2026-10")["cloud_cost"]
    page = exec_client.get("/costs/explorer/?period=2026-10").context["kpi"]
    by_hand = [Decimal(0)] * 10 + [sum(c for *_, c in SEPTEMBER), sum(c for *_, c in OCTOBER)]
    assert tile.sparkline == page.sparkline == by_hand  # November 2025 .. October 2026
    assert _tiles(exec_client, "period=2026-09")["cloud_cost"].value == tile.sparkline[-2] == Decimal("150")
    alpha = _tiles(exec_client, "period=2026-10&service=alpha")["cloud_cost"].sparkline
    assert alpha[-2:] == [Decimal("100.00"), Decimal("150.75")]  # 100; 120.50 + 30.25


@pytest.fixture
def features(billing):
    """Two features shipped in October (alpha 10 h, beta 20 h) and one in September (alpha 5 h), 100.00/h."""
    from apps.catalog.models import Service
    from apps.delivery.models import DeliverySource, Feature

    source = DeliverySource.objects.create(slug="jira", name="Jira")
    services = {s.slug: s for s in Service.objects.select_related("team")}
    for ref, slug, hours, shipped in (
        ("F1", "alpha", 10, datetime(2026, 10, 5, 12, tzinfo=UTC)),
        ("F2", "beta", 20, datetime(2026, 10, 10, 12, tzinfo=UTC)),
        ("F3", "alpha", 5, datetime(2026, 9, 15, 12, tzinfo=UTC)),
    ):
        service = services[slug]
        Feature.objects.create(
            source=source,
            external_id=ref,
            title=ref,
            service=service,
            team=service.team,
            effort=Decimal(hours),
            effort_hours=Decimal(hours),
            shipped_at=shipped,
        )
    return services


def test_cost_per_feature_series_equals_the_delivery_page_month_by_month(exec_client, features):
    # October: labour 30 h x 100 = 3,000 + non-production (dev) cost 30.25, over 2 features.
    october = (Decimal(3000) + Decimal("30.25")) / 2
    # September: 5 h x 100 = 500 over 1 feature; billing has September data but no non-production cost.
    september = Decimal(500)
    tile = _tiles(exec_client, "period=2026-10")["cost_per_feature"]
    assert (tile.value, tile.previous) == (october, september)
    assert tile.sparkline == [None] * 10 + [september, october]
    for key, expected in (("2026-10", october), ("2026-09", september)):
        page = exec_client.get(f"/functionality/?period={key}").context["kpi"]  # built per team, then summed
        assert page.value == _tiles(exec_client, f"period={key}")["cost_per_feature"].value == expected
        assert Decimal(_api(exec_client, f"period={key}")["cost_per_feature"]["value"]) == expected
    team = features["alpha"].team.slug  # alpha's team: F1 and its dev cost only
    assert _tiles(exec_client, f"period=2026-10&team={team}")["cost_per_feature"].value == Decimal("1030.25")


def test_capacity_waste_series_equals_each_period_computed_on_its_own():
    from apps.capacity.kpis import capacity_waste
    from apps.capacity.selectors import pool_capacity, pools_for, total_waste
    from apps.core.periods import Period
    from apps.kpis.registry import KpiFilters
    from tests.capacity.factories import push
    from tests.telemetry.factories import CapacityPoolFactory

    CapacityPoolFactory(
        slug="gpu",
        resource_type="gpu",
        environment=EnvironmentFactory(slug="prod"),
        unit_price_per_hour=Decimal("2.00"),
        target_utilisation=Decimal("0.800"),
    )
    first = datetime(2026, 11, 2, tzinfo=UTC)
    hours = [first + timedelta(hours=h) for h in range(72)]  # three days, busier each day
    push("gpu_provisioned", dict.fromkeys(hours, 10), pool="gpu")
    push("gpu_used", {h: 2 + 2 * ((h - first).days) for h in hours}, pool="gpu")
    day = Period("day", date(2026, 11, 4), date(2026, 11, 5))
    kpi = capacity_waste(day, KpiFilters())
    pools = list(pools_for())
    periods = [
        Period("day", date(2026, 10, 30) + timedelta(days=i), date(2026, 10, 31) + timedelta(days=i)) for i in range(6)
    ]
    assert kpi.sparkline == [total_waste(pool_capacity(pools, p.start, p.end)) for p in periods]
    # 240 GPU-hours x 2.00 = 480 a day; waste 480 x (1 - u / 0.8) with u = 0.2, 0.4, 0.6.
    assert kpi.sparkline == [None, None, None, Decimal("360"), Decimal("240"), Decimal("120")]
