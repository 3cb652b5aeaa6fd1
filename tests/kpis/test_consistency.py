"""One figure, one function: the overview's tiles equal the detail pages' and the API's figures."""

from datetime import date
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
