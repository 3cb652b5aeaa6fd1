"""The Functionality page, its drill-down and the CSV import page, as each role sees them."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.delivery.models import Feature

pytestmark = pytest.mark.django_db

PAGE = "/functionality/"


def text(response) -> str:
    html = re.sub(r"<script.*?</script>", " ", response.content.decode(), flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_an_executive_sees_cost_per_feature_its_drivers_the_dora_tiers_and_the_features(history, exec_client):
    response = exec_client.get(PAGE, {"period": "2026-02"})
    assert response.status_code == 200
    page = text(response)
    assert "Cost per feature 2,500.00 USD per feature" in page
    assert "▼ 39.0% vs January 2026 (better)" in page  # 4,100 -> 2,500
    assert "Labour 4,200.00 USD" in page and "Non-production environments 800.00 USD" in page
    assert "Features shipped 2" in page
    # DORA tiles: 0.75 a week (medium), 48 h (high), 80% (low), 3.5 h (high), with the benchmark's source.
    assert "Deployment frequency 0.8 per week Medium" in page
    assert "Lead time for changes 2.0 days High" in page
    assert "Change failure rate 80.0% Low" in page and "4 of 5 deployments failed or caused an incident" in page
    assert "Time to restore service 3.5 h High" in page
    assert "DORA Accelerate State of DevOps Report 2024 (source year 2024)" in page
    # The features table: each feature's labour plus its team's environment cost share.
    assert (
        "Feature F2 F2 SVC-A Alpha 4 Feb 2026 10:00 deployment D3" in page and "10.0 h 1,000.00 300.00 1,300.00" in page
    )
    assert "8 points 40.0 h 3,200.00 500.00 3,700.00" in page
    assert "Feature F5" not in page  # never shipped
    html = response.content.decode()
    for figure in ["fig-by-team", "fig-drivers", "fig-dora-0", "fig-dora-3"]:
        assert f'data-figure="{figure}"' in html and f'id="{figure}"' in html
    assert "Import CSV" not in page  # executives change nothing


def test_the_page_says_when_the_environment_cost_is_missing(history, exec_client):
    page = text(exec_client.get(PAGE, {"period": "2026-03"}))
    assert "Environment cost is missing for March 2026" in page
    assert "Cost per feature 1,600.00 USD per feature" in page  # labour only
    assert "Non-production environments missing" in page


def test_a_team_cut_and_the_htmx_fragment(history, exec_client):
    page = text(exec_client.get(PAGE, {"period": "2026-02", "team": "beta"}))
    assert "Cost per feature 3,700.00" in page and "Feature F2" not in page
    fragment = exec_client.get(
        PAGE, {"period": "2026-02", "team": "alpha"}, headers={"HX-Request": "true", "HX-Target": "delivery-body"}
    )
    html = fragment.content.decode()
    assert "<html" not in html and 'id="delivery-body"' in html and "1,300.00" in html


def test_an_unknown_team_shows_everything_and_says_so(history, exec_client):
    page = text(exec_client.get(PAGE, {"period": "2026-02", "team": "nobody"}))
    assert "not in the catalog; showing every team and service" in page
    assert "Cost per feature 2,500.00" in page


def test_without_delivery_data_the_page_names_its_source(catalog, exec_client):
    page = text(exec_client.get(PAGE))
    assert "No data for" in page and "Delivery data: features, deployments, changes and incidents" in page


def test_the_page_stays_within_a_query_budget_however_many_features_shipped(
    history, exec_client, django_assert_max_num_queries
):
    with django_assert_max_num_queries(40):
        exec_client.get(PAGE, {"period": "2026-02"})
    feature = Feature.objects.get(external_id="F2")
    for i in range(30):
        clone = Feature.objects.create(
            source=feature.source,
            external_id=f"extra-{i}",
            title=f"Extra {i}",
            service=feature.service,
            team=feature.team,
            effort=1,
            effort_hours=1,
            shipped_at=feature.shipped_at,
            first_deployment=feature.first_deployment,
        )
        assert clone.pk
    with django_assert_max_num_queries(40):
        response = exec_client.get(PAGE, {"period": "2026-02"})
    assert "Features shipped 32" in text(response)


def test_the_drill_down_lists_the_deployments_and_incidents_behind_the_figures(history, exec_client):
    page = text(exec_client.get("/functionality/activity/", {"period": "2026-02"}))
    for deployment in ["D2", "D3", "D5", "D6", "D8"]:
        assert f" {deployment} " in page
    assert " D4 " not in page  # dev, not production
    assert "Failed" in page and "Succeeded" in page
    assert "Incident I1" in page and "3.5 h" in page
    assert "Incident I2" in page and "Incident I3" in page  # open during February, resolved after
    assert "Incident I4" not in page  # starts in March


def test_an_admin_imports_a_csv_file_and_sees_what_was_wrong_with_a_bad_one(catalog, admin_client_portal):
    good = SimpleUploadedFile("features.csv", b"feature_id,title,service,effort\nF-1,One,svc-a,8\n")
    response = admin_client_portal.post("/functionality/import/", {"kind": "features", "file": good}, follow=True)
    assert "features.csv: 1 rows — 1 created, 0 updated, 0 unchanged." in text(response)
    bad = SimpleUploadedFile("broken.csv", b"feature_id,title,service,effort\nF-2,Two,svc-q,8\n")
    response = admin_client_portal.post("/functionality/import/", {"kind": "features", "file": bad})
    page = text(response)
    assert "broken.csv was not imported" in page
    assert "2 service svc-q the slug of a catalog service (svc-a, svc-b)" in page
    assert Feature.objects.count() == 1


def test_features_shipped_in_a_month_not_over_are_marked_so_far(history, exec_client, monkeypatch):
    from datetime import date

    from apps.core import context_processors

    monkeypatch.setattr(context_processors.timezone, "localdate", lambda: date(2026, 2, 10))
    page = text(exec_client.get(PAGE, {"period": "2026-02"}))
    assert "Features shipped 2 so far first production deployment in February 2026 (day 10 of 28)" in page
    monkeypatch.setattr(context_processors.timezone, "localdate", lambda: date(2026, 3, 2))
    page = text(exec_client.get(PAGE, {"period": "2026-02"}))
    assert "Features shipped 2 first production deployment in February 2026 " in page and "so far" not in page
