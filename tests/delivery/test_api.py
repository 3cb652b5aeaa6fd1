"""The delivery API: batches (admins and an admin's write token), listings, metrics and CSV upload."""

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from apps.accounts.roles import Role
from apps.accounts.services import api_token_create
from apps.delivery.models import Deployment, Feature

from .factories import sha

pytestmark = pytest.mark.django_db

URL = "/api/v1/delivery/deployments/"
BATCH = {
    "source": "github-actions",
    "items": [
        {
            "deployment_id": "run-1",
            "service": "svc-a",
            "environment": "prod",
            "deployed_at": "2026-02-04T10:00:00Z",
            "status": "success",
            "commit": sha("x"),
            "changes": [sha("y")],
        }
    ],
}


def token_client(user, scope: str) -> APIClient:
    _, key = api_token_create(user=user, name="ci", scope=scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_an_admins_write_token_sends_a_batch_and_a_replay_changes_nothing(catalog, users):
    client = token_client(users[Role.ADMIN], "write")
    first = client.post(URL, BATCH, format="json")
    assert first.status_code == 200, first.content
    assert (first.json()["created"], first.json()["status"], first.json()["source"]) == (1, "applied", "github-actions")
    updated_at = Deployment.objects.get().updated_at
    replay = client.post(URL, BATCH, format="json")
    assert (replay.json()["created"], replay.json()["updated"], replay.json()["unchanged"]) == (0, 0, 1)
    assert Deployment.objects.get().updated_at == updated_at


@pytest.mark.parametrize(
    ("role", "scope", "status", "message"),
    [
        (Role.ADMIN, "read", 403, "read scope only"),
        (Role.EXECUTIVE, "write", 403, "does not allow"),
        (Role.PRODUCT_MANAGER, "write", 403, "does not allow"),
    ],
)
def test_only_admins_write_and_never_with_a_read_token(catalog, users, role, scope, status, message):
    response = token_client(users[role], scope).post(URL, BATCH, format="json")
    assert response.status_code == status and message in response.json()["detail"]
    assert not Deployment.objects.exists()


def test_a_bad_item_refuses_the_whole_batch_naming_item_field_value_and_expectation(catalog, admin_client_portal):
    items = [
        dict(BATCH["items"][0]),
        {**BATCH["items"][0], "deployment_id": "run-2", "deployed_at": "soon", "colour": "red"},
    ]
    response = admin_client_portal.post(URL, {"items": items}, content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == [
        {"item": 1, "column": "colour", "value": "colour", "expected": body["errors"][0]["expected"]},
        {
            "item": 1,
            "column": "deployed_at",
            "value": "soon",
            "expected": "an ISO 8601 date-time, e.g. 2026-03-04T10:15:00Z (no offset means UTC)",
        },
    ]
    assert body["errors"][0]["expected"].startswith("one of the columns deployment_id")
    assert "nothing was written" in body["detail"]
    assert not Deployment.objects.exists()


def test_a_body_without_a_list_of_items_is_refused(catalog, admin_client_portal):
    response = admin_client_portal.post(URL, {"items": {"deployment_id": "x"}}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["expected"] == "a JSON list of records"


def test_listings_filter_by_period_team_and_shipped(history, exec_client):
    shipped_in_feb = exec_client.get("/api/v1/delivery/features/?period=2026-02").json()
    assert sorted(f["feature_id"] for f in shipped_in_feb["results"]) == ["F2", "F3"]
    f3 = next(f for f in shipped_in_feb["results"] if f["feature_id"] == "F3")
    assert (f3["effort"], f3["effort_unit"], f3["effort_hours"], f3["first_deployment"]) == (
        "8.00",
        "points",
        "40.0000",
        "D5",
    )
    unshipped = exec_client.get("/api/v1/delivery/features/?shipped=false").json()
    assert sorted(f["feature_id"] for f in unshipped["results"]) == ["F5", "F6", "F7"]
    failed = exec_client.get("/api/v1/delivery/deployments/?status=failure&service=svc-b").json()
    assert [d["deployment_id"] for d in failed["results"]] == ["D6"]
    open_incidents = exec_client.get("/api/v1/delivery/incidents/?open=true").json()
    assert [(i["incident_id"], i["deployment_id"], i["deployment_source"]) for i in open_incidents["results"]] == [
        ("I4", "D7", "ci")
    ]
    bad = exec_client.get("/api/v1/delivery/features/?period=February")
    assert bad.status_code == 400 and "not understood" in bad.json()["period"]


def test_metrics_give_the_hand_computed_figures(history, exec_client):
    body = exec_client.get("/api/v1/delivery/metrics/?period=2026-02").json()
    assert body["cost"] == {
        "features_shipped": 2,
        "effort_hours": "50.0000",
        "labour": "4200.0000",
        "non_production_environments": "800.000000",
        "cost_per_feature": "2500.000000",
    }
    assert body["dora"]["lead_time"] == {
        "value": "48.000000",
        "unit": "hours (median)",
        "tier": "high",
        "tier_label": "Between one day and one week",
        "n": 3,
    }
    assert body["dora"]["change_failure_rate"]["value"] == "80.000000"
    assert body["dora"]["change_failure_rate"]["tier"] == "low"
    assert body["benchmark"]["source_year"] == 2024
    beta = exec_client.get("/api/v1/delivery/metrics/?period=2026-03&team=beta").json()
    assert beta["cost"]["non_production_environments"] is None and beta["cost"]["cost_per_feature"] == "1600.000000"


def test_a_csv_file_uploaded_through_the_api_is_imported_and_a_bad_one_explained(catalog, admin_client_portal):
    good = SimpleUploadedFile("f.csv", b"feature_id,title,service,effort\nF-1,One,svc-a,12.5\n", "text/csv")
    response = admin_client_portal.post("/api/v1/delivery/imports/", {"kind": "features", "file": good})
    assert response.status_code == 200 and response.json()["created"] == 1
    assert Feature.objects.get().effort_hours == Decimal("12.5")
    bad = SimpleUploadedFile("g.csv", b"feature_id,title,service,effort\nF-2,Two,svc-a,-1\n", "text/csv")
    response = admin_client_portal.post("/api/v1/delivery/imports/", {"kind": "features", "file": bad})
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"row": 2, "column": "effort", "value": "-1", "expected": "a number ≥ 0 with at most 2 decimal places"}
    ]
    listed = admin_client_portal.get("/api/v1/delivery/imports/").json()["results"]
    assert [(i["filename"], i["status"]) for i in listed] == [("g.csv", "rejected"), ("f.csv", "applied")]
