"""POST /api/v1/telemetry/: every point validated with a precise error, whole-batch refusal by default, idempotent."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from apps.accounts.roles import Role
from apps.accounts.services import api_token_create
from apps.telemetry.models import Point, RetentionState, Rollup, Series
from tests.factories import EnvironmentFactory
from tests.telemetry.factories import CapacityPoolFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/telemetry/"
HOUR = datetime(2026, 11, 2, 10, tzinfo=UTC)


@pytest.fixture
def catalog():
    prod = EnvironmentFactory(slug="prod")
    version = ModelVersionFactory(model__slug="promo-ranker", version="2.1.0")
    pool = CapacityPoolFactory(slug="gpu-a10g", environment=prod)
    return {"prod": prod, "version": version, "model": version.model, "pool": pool}


@pytest.fixture
def api(users):
    client = APIClient()
    client.force_authenticate(users[Role.ADMIN])
    return client


def _good_batch():
    return [
        {
            "metric": "latency_ms",
            "model": "promo-ranker",
            "version": "2.1.0",
            "environment": "prod",
            "timestamp": "2026-11-02T10:00:00Z",
            "value": 41.5,
        },
        {
            "metric": "request_count",
            "model": "promo-ranker",
            "version": "2.1.0",
            "environment": "prod",
            "timestamp": HOUR.timestamp(),
            "value": 1200,
        },
        {"metric": "gpu_used", "pool": "gpu-a10g", "timestamp": "2026-11-02T10:00:00+00:00", "value": "6.5"},
    ]


def test_a_valid_batch_is_stored_and_posting_it_again_stores_nothing_more(api, catalog):
    first = api.post(URL, {"points": _good_batch()}, format="json")
    assert first.status_code == 200, first.json()
    assert first.json() | {"errors": []} == {
        "received": 3,
        "stored": 3,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "series": 3,
        "errors": [],
    }
    second = api.post(URL, {"points": _good_batch()}, format="json")
    assert second.status_code == 200
    assert (second.json()["created"], second.json()["unchanged"], second.json()["stored"]) == (0, 3, 0)
    assert Point.objects.count() == 3
    assert Series.objects.count() == 3
    gpu = Point.objects.get(series__metric="gpu_used")
    assert gpu.value == 6.5 and gpu.ts == HOUR
    # The pool's environment is part of the series even though the point did not name it.
    assert gpu.series.environment == catalog["prod"] and gpu.series.pool == catalog["pool"]
    # The model's service is too, so units by service find it.
    latency = Series.objects.get(metric="latency_ms")
    assert latency.service_id == catalog["model"].service_id and latency.version == catalog["version"]


def test_a_new_value_for_a_stored_point_replaces_it(api, catalog):
    api.post(URL, {"points": _good_batch()}, format="json")
    batch = _good_batch()
    batch[2]["value"] = 7.25
    response = api.post(URL, {"points": batch}, format="json")
    assert (response.json()["updated"], response.json()["unchanged"]) == (1, 2)
    assert Point.objects.get(series__metric="gpu_used").value == 7.25
    hourly = Rollup.objects.get(series__metric="gpu_used", grain="hour")
    assert (hourly.count, hourly.sum, hourly.max) == (1, 7.25, 7.25)


def test_malformed_points_refuse_the_batch_with_an_error_per_point(api, catalog):
    future = (timezone.now() + timedelta(hours=2)).isoformat()
    batch = [
        *_good_batch(),
        {"metric": "latency_msec", "model": "promo-ranker", "timestamp": "2026-11-02T10:00:00Z", "value": 3},
        {"metric": "latency_ms", "model": "promo-ranker", "timestamp": "2026-11-02 10:00:00", "value": 3},
        {"metric": "latency_ms", "model": "promo-ranker", "timestamp": "2026-11-02T10:00:00Z", "value": "NaN"},
        {"metric": "latency_ms", "model": "no-such-model", "timestamp": "2026-11-02T10:00:00Z", "value": 3},
        {
            "metric": "latency_ms",
            "model": "promo-ranker",
            "version": "9.9",
            "timestamp": "2026-11-02T10:00:00Z",
            "value": 3,
        },
        {"metric": "gpu_used", "model": "promo-ranker", "timestamp": "2026-11-02T10:00:00Z", "value": 3},
        {"metric": "request_count", "model": "promo-ranker", "timestamp": "2026-11-02T10:00:00Z", "value": -1},
        {"metric": "latency_ms", "model": "promo-ranker", "timestamp": 1793613600000, "value": 3},
        {"metric": "latency_ms", "model": "promo-ranker", "timestamp": future, "value": 3},
        {"metric": "latency_ms", "modle": "promo-ranker", "timestamp": "2026-11-02T10:00:00Z", "value": 3},
        "not an object",
    ]
    response = api.post(URL, {"points": batch}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert "11 of 14 points are invalid, so nothing was stored" in body["detail"]
    errors = {(e["index"], e["field"]): e for e in body["errors"]}
    assert "unknown metric" in errors[(3, "metric")]["message"] and errors[(3, "metric")]["value"] == "latency_msec"
    assert "time zone" in errors[(4, "timestamp")]["message"]
    assert "finite" in errors[(5, "value")]["message"]
    assert errors[(6, "model")]["message"] == "no ML model with this slug in the catalog"
    assert errors[(6, "model")]["value"] == "no-such-model"
    assert "has no version" in errors[(7, "version")]["message"]
    assert "name the pool" in errors[(8, "pool")]["message"]
    assert "cannot be negative" in errors[(9, "value")]["message"]
    assert "milliseconds" in errors[(10, "timestamp")]["message"]
    assert "future" in errors[(11, "timestamp")]["message"]
    assert "unknown field" in errors[(12, "modle")]["message"]
    assert errors[(13, "point")]["value"] == "not an object"
    assert {e["index"] for e in body["errors"]} == set(range(3, 14))  # the three good points have no error
    assert Point.objects.count() == 0 and Series.objects.count() == 0


def test_with_partial_the_valid_points_are_kept_and_the_invalid_listed(api, catalog):
    batch = [*_good_batch(), {"metric": "gpu_used", "pool": "nope", "timestamp": "2026-11-02T10:00:00Z", "value": 1}]
    response = api.post(URL, {"points": batch, "partial": True}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["rejected"]) == (3, 1)
    assert body["errors"] == [
        {"index": 3, "field": "pool", "value": "nope", "message": "no capacity pool with this slug in the catalog"}
    ]
    assert Point.objects.count() == 3


def test_two_values_for_one_series_and_time_in_a_batch_are_refused(api, catalog):
    point = _good_batch()[2]
    response = api.post(URL, {"points": [point, point | {"value": 9}]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["index"] == 1
    assert "point 0 has the same series and timestamp" in response.json()["errors"][0]["message"]
    # An exact repeat inside a batch is simply stored once.
    response = api.post(URL, {"points": [point, point]}, format="json")
    assert (response.json()["created"], response.json()["unchanged"]) == (1, 1)


def test_the_batch_shape_is_checked(api, catalog):
    assert api.post(URL, {}, format="json").json()["detail"] == "'points' must be a list of point objects"
    assert api.post(URL, {"points": []}, format="json").status_code == 400
    too_many = api.post(URL, {"points": [_good_batch()[0]] * 10_001}, format="json")
    assert too_many.status_code == 400 and "at most 10000 points" in too_many.json()["detail"]
    assert api.post(URL, {"points": _good_batch(), "partial": "yes"}, format="json").status_code == 400


def test_points_before_the_purged_window_are_refused(api, catalog):
    RetentionState.objects.create(pk=1, raw_purged_before=datetime(2026, 11, 3, tzinfo=UTC))
    response = api.post(URL, {"points": _good_batch()}, format="json")
    assert response.status_code == 400
    assert "purged" in response.json()["errors"][0]["message"]


def test_a_read_token_cannot_push_and_a_write_token_of_an_admin_can(users, catalog):
    client = APIClient()
    _, read_key = api_token_create(user=users[Role.ADMIN], name="r", scope=ApiToken.Scope.READ)
    client.credentials(HTTP_AUTHORIZATION=f"Token {read_key}")
    assert client.post(URL, {"points": _good_batch()}, format="json").status_code == 403
    _, write_key = api_token_create(user=users[Role.ADMIN], name="w", scope=ApiToken.Scope.WRITE)
    client.credentials(HTTP_AUTHORIZATION=f"Token {write_key}")
    assert client.post(URL, {"points": _good_batch()}, format="json").status_code == 200
    client.force_authenticate(users[Role.EXECUTIVE])
    assert client.post(URL, {"points": _good_batch()}, format="json").status_code == 403


def test_the_route_is_named(catalog):
    assert reverse("telemetry-push") == URL
