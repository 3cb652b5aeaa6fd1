"""The executive overview, its CSV export and the KPI API present the same figures."""

import csv
import io
from decimal import Decimal

import pytest

from apps.accounts.roles import Role
from apps.kpis.selectors import HEADLINES

pytestmark = pytest.mark.django_db


def test_overview_shows_every_headline_and_filters_update_only_the_tiles(exec_client):
    page = exec_client.get("/?period=2026-10").content.decode()
    for h in HEADLINES:
        assert f'data-kpi="{h.key}"' in page
    fragment = exec_client.get("/?period=2026-10", headers={"HX-Request": "true", "HX-Target": "kpi-tiles"})
    html = fragment.content.decode()
    assert 'id="kpi-tiles"' in html and "<html" not in html


def test_unknown_filter_value_is_refused_by_the_api_with_the_field_named(exec_client):
    response = exec_client.get("/api/v1/kpis/?period=2026-10&service=not-a-service")
    assert response.status_code == 400
    assert "service" in response.json()


def test_bad_period_is_refused_by_the_api(exec_client):
    response = exec_client.get("/api/v1/kpis/?period=2026-13")
    assert response.status_code == 400
    assert "not a real date" in response.json()["period"][0]


def test_api_and_csv_list_the_same_kpis_for_the_period(exec_client):
    api = exec_client.get("/api/v1/kpis/?period=2026-10").json()
    assert api["period"] == "2026-10" and api["period_start"] == "2026-10-01" and api["period_end"] == "2026-11-01"
    rows = list(csv.DictReader(io.StringIO(exec_client.get("/overview.csv?period=2026-10").content.decode())))
    assert [r["kpi"] for r in rows] == [k["key"] for k in api["kpis"]]
    assert all(r["period"] == "2026-10" for r in rows)
    by_key = {k["key"]: k for k in api["kpis"]}
    for row in rows:
        api_value = by_key[row["kpi"]]["value"]
        assert (Decimal(row["value"]) if row["value"] else None) == (Decimal(api_value) if api_value else None)


def test_export_is_refused_to_anonymous_visitors(role_client):
    assert role_client(None).get("/overview.csv").status_code == 302
    assert role_client(Role.PRODUCT_MANAGER).get("/overview.csv").status_code == 200
