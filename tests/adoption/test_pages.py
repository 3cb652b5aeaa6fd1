"""The adoption pages: filters with htmx, empty states, sorting, exports, and bounded queries."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from apps.adoption.services import events_ingest, rollups_refresh_all

from .factories import ev, make_catalog

pytestmark = pytest.mark.django_db
PERIOD = "2025-03"


@pytest.fixture
def data(db):
    catalog = make_catalog()
    t = datetime(2025, 3, 3, 9, tzinfo=UTC)
    events = []
    for i, store in enumerate(["store-0001", "store-0001", "store-0003", "store-0004"]):
        user = f"emp-{i}"
        events += [
            ev("alpha", user, "trial_requested", t, location=store, role="clerk"),
            ev("alpha", user, "trial_started", t + timedelta(days=1), location=store, role="clerk"),
            ev("alpha", user, "alpha_used", t + timedelta(days=2), location=store, role="clerk" if i else "manager"),
        ]
    events.append(ev("beta", "emp-9", "beta_done", t, location="store-0003", role="analyst"))
    events_ingest(events, schedule_refresh=False)
    rollups_refresh_all()
    return catalog


@pytest.fixture
def pm(client, data):
    client.force_login(data["owner"])
    return client


def test_the_overview_shows_tiles_funnel_and_charts(pm):
    html = pm.get(f"{reverse('adoption:overview')}?period={PERIOD}").content.decode()
    assert 'data-kpi="mau"' in html and 'data-kpi="nps"' in html
    assert 'data-figure="fig-funnel"' in html and 'id="fig-funnel"' in html
    assert 'data-figure="fig-daily"' in html and 'data-figure="fig-monthly"' in html
    assert "plotly/plotly.min.js" in html
    assert 'data-testid="empty-state"' not in html


def test_a_filter_change_with_htmx_returns_only_the_body(pm):
    response = pm.get(
        f"{reverse('adoption:overview')}?period={PERIOD}&product=beta",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="adoption-body",
    )
    html = response.content.decode()
    assert "<html" not in html and 'data-kpi="mau"' in html
    assert "?product=beta" in html, "tab links keep the filters"


def test_the_period_picker_still_gets_the_whole_page(pm):
    html = pm.get(
        f"{reverse('adoption:overview')}?period={PERIOD}", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="main"
    ).content.decode()
    assert "<html" in html and 'class="page-period"' in html


def test_an_unknown_filter_value_is_reported_and_ignored(pm):
    html = pm.get(f"{reverse('adoption:overview')}?store=store-9999").content.decode()
    assert "Filter ignored: unknown location &#x27;store-9999&#x27;." in html


def test_no_data_shows_where_it_comes_from(client, db):
    make_catalog()
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="reader"))
    html = client.get(reverse("adoption:overview")).content.decode()
    assert 'data-testid="empty-state"' in html
    assert "/api/v1/events/batch/" in html


@pytest.mark.parametrize(("by", "first"), [("store", "store-0001"), ("region", "region-south"), ("role", "clerk")])
def test_the_location_table_sorts_by_a_metric(pm, by, first):
    html = pm.get(f"{reverse('adoption:locations')}?period={PERIOD}&by={by}&sort=-mau").content.decode()
    assert html.index(f'data-key="{first}"') < html.index("</tbody>")
    rows = [line for line in html.splitlines() if "<tr data-key=" in line]
    assert f'data-key="{first}"' in rows[0]


def test_sorting_by_an_unknown_column_says_so(pm):
    html = pm.get(f"{reverse('adoption:locations')}?period={PERIOD}&sort=-colour").content.decode()
    assert "cannot sort by &#x27;colour&#x27;" in html


@pytest.mark.parametrize("kind", ["summary", "funnel", "trend", "retention", "locations", "nps-responses"])
def test_every_export_is_a_csv_with_a_header(pm, kind):
    response = pm.get(f"{reverse('adoption:export', args=[kind])}?period={PERIOD}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert f"adoption-{kind}-{PERIOD}.csv" in response["Content-Disposition"]
    assert response.content.decode().splitlines()[0]


def test_the_store_export_has_every_row_and_the_page_numbers(pm):
    text = pm.get(f"{reverse('adoption:export', args=['locations'])}?period={PERIOD}&by=store").content.decode()
    lines = text.strip().splitlines()
    assert lines[0].startswith("key,name,mau,")
    rows = {line.split(",")[0]: int(line.split(",")[2]) for line in lines[1:]}
    assert rows == {"store-0001": 2, "store-0003": 2, "store-0004": 1}


def test_the_overview_stays_within_a_query_budget(pm, django_assert_max_num_queries):
    with django_assert_max_num_queries(30):
        pm.get(f"{reverse('adoption:overview')}?period={PERIOD}")


def test_the_retention_page_lists_cohorts(pm):
    html = pm.get(f"{reverse('adoption:retention')}?period={PERIOD}").content.decode()
    assert 'data-cohort="2025-03"' in html
    assert "100.0 %" in html


def test_tab_and_export_links_keep_a_store_filter(pm):
    html = pm.get(f"{reverse('adoption:overview')}?period={PERIOD}&store=store-0003").content.decode()
    assert f"{reverse('adoption:retention')}?store=store-0003" in html
    assert f"{reverse('adoption:export', args=['summary'])}?store=store-0003" in html
    retention = pm.get(f"{reverse('adoption:retention')}?store=store-0003").content.decode()
    assert "Filtered to Store 3" in retention


def test_admins_browse_events_and_nps_answers_read_only(client, data):
    from apps.accounts.roles import Role
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="boss", role=Role.ADMIN))
    events = client.get(reverse("admin:adoption_event_changelist"))
    assert events.status_code == 200 and "emp-9" in events.content.decode()
    assert client.get(reverse("admin:adoption_event_add")).status_code == 403
    assert client.get(reverse("admin:adoption_npscampaign_changelist")).status_code == 200


def test_a_catalog_without_products_shows_the_empty_state_not_an_error(client, db):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="first-reader"))
    response = client.get(reverse("adoption:overview"))
    assert response.status_code == 200
    assert 'data-testid="empty-state"' in response.content.decode()
