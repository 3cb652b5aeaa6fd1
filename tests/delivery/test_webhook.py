"""The GitHub-style deployment webhook: signed, idempotent on delivery and deployment ids, clear refusals."""

import json

import pytest
from django.test import Client

from apps.delivery.models import Change, DeliverySource, Deployment, WebhookDelivery

from .factories import sha, sign, signed

pytestmark = pytest.mark.django_db

SECRET = "s3cret-for-tests"
ENV_VAR = "OPSPORTAL_DELIVERY_TEST_SECRET"
URL = "/api/v1/delivery/webhooks/github/gh/"


@pytest.fixture
def source(catalog, monkeypatch):
    monkeypatch.setenv(ENV_VAR, SECRET)
    return DeliverySource.objects.create(
        slug="gh",
        name="GitHub",
        kind=DeliverySource.Kind.GITHUB,
        secret_env_var=ENV_VAR,
        repository_services={"meridian/service-b-repo": "svc-b"},
    )


def payload(*, state="success", deployment_id=42, when="2026-02-04T10:00:00Z", repo="meridian/svc-a", extra=None):
    return {
        "action": "created",
        "deployment_status": {"id": 900, "state": state, "environment": "production", "created_at": when},
        "deployment": {
            "id": deployment_id,
            "sha": sha("head"),
            "ref": "main",
            "environment": "production",
            "created_at": "2026-02-04T09:50:00Z",
            "payload": extra
            if extra is not None
            else {"changes": [{"sha": sha("older"), "committed_at": "2026-02-03T09:00:00Z"}]},
        },
        "repository": {"full_name": repo, "name": repo.split("/")[1]},
    }


def post(body_payload, *, delivery="d-1", event="deployment_status", secret=SECRET, signature=None, raw=None):
    body, sig = signed(secret, body_payload) if raw is None else (raw, sign(secret, raw))
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": signature or sig}
    return Client().post(URL, body, content_type="application/json", headers=headers)


def test_a_signed_deployment_status_records_the_deployment_and_its_commits(source):
    response = post(payload())
    assert response.status_code == 200, response.content
    assert response.json()["deployment_id"] == "42"
    deployment = Deployment.objects.get()
    assert (deployment.service.slug, deployment.environment.slug, deployment.status) == ("svc-a", "prod", "success")
    assert deployment.deployed_at.isoformat() == "2026-02-04T10:00:00+00:00"
    assert sorted(c.sha for c in deployment.changes.all()) == sorted([sha("head"), sha("older")])
    assert Change.objects.get(sha=sha("older")).committed_at.isoformat() == "2026-02-03T09:00:00+00:00"
    assert WebhookDelivery.objects.get().outcome == "deployment 42 of svc-a to production: succeeded"


def test_the_repository_map_names_the_service(source):
    assert post(payload(repo="meridian/service-b-repo")).status_code == 200
    assert Deployment.objects.get().service.slug == "svc-b"


def test_a_redelivery_is_recognised_and_changes_nothing(source):
    post(payload())
    before = list(Deployment.objects.values_list("pk", "updated_at", "status"))
    again = post(payload(state="failure"), delivery="d-1")
    assert again.status_code == 200 and "already processed" in again.json()["detail"]
    assert list(Deployment.objects.values_list("pk", "updated_at", "status")) == before


def test_statuses_of_one_deployment_update_it_and_an_older_report_never_wins(source):
    assert post(payload(state="in_progress", when="2026-02-04T09:55:00Z"), delivery="d-1").status_code == 200
    assert Deployment.objects.get().status == "in_progress"
    post(payload(state="failure", when="2026-02-04T10:05:00Z"), delivery="d-2")
    assert Deployment.objects.get().status == "failure"
    post(payload(state="pending", when="2026-02-04T10:10:00Z"), delivery="d-3")  # late, not final
    post(payload(state="success", when="2026-02-04T10:01:00Z"), delivery="d-4")  # older than the failure
    deployment = Deployment.objects.get()
    assert (deployment.status, deployment.deployed_at.isoformat()) == ("failure", "2026-02-04T10:05:00+00:00")
    post(payload(state="success", when="2026-02-04T10:30:00Z"), delivery="d-5")  # a newer final report
    assert Deployment.objects.get().status == "success"
    assert Deployment.objects.count() == 1


def test_inactive_ping_and_other_events_are_answered_without_writing(source):
    assert "superseded" in post(payload(state="inactive")).json()["detail"]
    assert post({"zen": "hi"}, event="ping", delivery="p").json()["detail"].startswith("pong")
    assert "ignored" in post({"action": "opened"}, event="pull_request", delivery="x").json()["detail"]
    assert not Deployment.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"secret": "wrong-secret"}, 403, "signature does not match"),
        ({"signature": "sha256=" + "0" * 64}, 403, "signature does not match"),
        ({"signature": "md5=abc"}, 401, "must be 'sha256=' followed by 64 hexadecimal"),
    ],
)
def test_a_bad_signature_is_refused_and_nothing_is_written(source, kwargs, status, message):
    response = post(payload(), **kwargs)
    assert response.status_code == status and message in response.json()["detail"]
    assert not Deployment.objects.exists() and not WebhookDelivery.objects.exists()


def test_a_missing_signature_unknown_source_or_unset_secret_is_refused(source, monkeypatch):
    body = json.dumps(payload())
    missing = Client().post(URL, body, content_type="application/json", headers={"X-GitHub-Event": "deployment_status"})
    assert missing.status_code == 401 and "X-Hub-Signature-256 header is missing" in missing.json()["detail"]
    other = Client().post("/api/v1/delivery/webhooks/github/nope/", body, content_type="application/json")
    assert other.status_code == 404 and "no GitHub webhook source 'nope'" in other.json()["detail"]
    monkeypatch.delenv(ENV_VAR)
    unset = post(payload())
    assert unset.status_code == 503 and "no secret configured" in unset.json()["detail"]
    assert SECRET not in json.dumps(list(DeliverySource.objects.values()), default=str)


def test_a_payload_that_cannot_be_mapped_is_refused_naming_the_field(source):
    unknown_repo = post(payload(repo="meridian/unknown", extra={}))
    assert unknown_repo.status_code == 400
    assert unknown_repo.json()["errors"] == [
        {
            "field": "deployment.payload.service (or the source's repository map)",
            "value": "unknown",
            "expected": "the slug of a catalog service (svc-a, svc-b)",
        }
    ]
    bad_state = post(payload(state="exploded"), delivery="d-2")
    assert bad_state.status_code == 400 and bad_state.json()["errors"][0]["field"] == "deployment_status.state"
    not_json = post(None, raw=b"{not json", delivery="d-3")
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["detail"]
    assert not Deployment.objects.exists() and not WebhookDelivery.objects.exists()


def test_a_feature_ships_when_the_webhook_reports_its_change_live_in_production(source):
    from apps.delivery.models import Feature
    from apps.delivery.services import delivery_api_ingest

    feature = {"feature_id": "F-1", "title": "Live", "service": "svc-a", "effort": "8", "changes": [sha("head")]}
    delivery_api_ingest(kind="features", items=[feature], source_slug="tracker")
    post(payload(state="failure", when="2026-02-04T10:00:00Z"), delivery="d-1")
    assert Feature.objects.get().shipped_at is None
    post(payload(state="success", when="2026-02-04T11:00:00Z"), delivery="d-2")
    assert Feature.objects.get().shipped_at.isoformat() == "2026-02-04T11:00:00+00:00"
