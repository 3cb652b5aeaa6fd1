"""POST /api/v1/events/batch/: idempotent by event id, per-event errors, all or nothing."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.accounts.roles import Role
from apps.accounts.services import api_token_create
from apps.adoption.models import Event, RollupMark, UserDay
from apps.adoption.services import events_ingest, rollups_refresh
from tests.factories import UserFactory

from .factories import ev, make_catalog, write_token

pytestmark = pytest.mark.django_db
URL = "/api/v1/events/batch/"
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def catalog(db):
    return make_catalog()


@pytest.fixture
def api(client, catalog):
    """A client posting with a write token of a product manager (an ingestion job's credentials)."""
    key = write_token(catalog["owner"])

    def post(body):
        return client.post(URL, body, content_type="application/json", HTTP_AUTHORIZATION=f"Token {key}")

    return post


def _batch(n: int, product: str = "alpha") -> list[dict]:
    return [
        ev(product, f"user-{i % 7}", "alpha_used", T0 + timedelta(minutes=i), location="store-0001", role="clerk")
        for i in range(n)
    ]


def test_posting_the_same_batch_twice_stores_each_event_once(api):
    batch = _batch(25)
    first = api({"events": batch})
    assert first.status_code == 200
    assert first.json() == {"accepted": 25, "duplicates": 0, "duplicate_ids": []}

    second = api({"events": batch})
    assert second.status_code == 200
    body = second.json()
    assert (body["accepted"], body["duplicates"]) == (0, 25)
    assert sorted(body["duplicate_ids"]) == sorted(e["event_id"] for e in batch)
    assert Event.objects.count() == 25


def test_a_retry_that_overlaps_reports_new_and_duplicate_ids_separately(api):
    batch = _batch(10)
    api({"events": batch[:6]})
    response = api({"events": batch[4:]})
    assert response.json()["accepted"] == 4
    assert sorted(response.json()["duplicate_ids"]) == sorted(e["event_id"] for e in batch[4:6])
    assert Event.objects.count() == 10


def test_an_id_repeated_inside_one_batch_is_stored_once(api):
    event = _batch(1)[0]
    response = api({"events": [event, dict(event), dict(event)]})
    assert response.json()["accepted"] == 1
    assert response.json()["duplicates"] == 2
    assert Event.objects.count() == 1


def test_the_unique_constraint_decides_not_a_lookup(catalog):
    """Storing directly twice (as two racing requests would) never duplicates: the database refuses."""
    batch = _batch(3)
    now = timezone.now()
    assert events_ingest(batch, now=now, schedule_refresh=False).accepted == 3
    assert events_ingest(batch, now=now, schedule_refresh=False).accepted == 0
    assert Event.objects.values("event_id").distinct().count() == 3


def test_malformed_events_get_one_error_each_and_nothing_is_stored(api):
    good = _batch(2)
    bad = [
        {"product": "alpha", "user_id": "u1", "event": "alpha_used", "timestamp": T0.isoformat()},  # no event_id
        ev("alpha", "u1", "alpha_used", T0, event_id="not-a-uuid"),
        ev("nope", "u1", "alpha_used", T0),
        ev("alpha", "u1", "gamma_used", T0),  # gamma's usage event, not alpha's
        ev("alpha", "u1", "alpha_used", "2025-02-30T10:00:00Z"),
        ev("alpha", "u1", "alpha_used", timezone.now() + timedelta(days=3)),
        ev("alpha", "u1", "rating_submitted", T0, rating=9),
        ev("alpha", "u1", "alpha_used", T0, location="store-9999"),
        ev("alpha", "", "alpha_used", T0),
        "not an object",
        {**ev("alpha", "u1", "alpha_used", T0), "colour": "red"},
    ]
    response = api({"events": [good[0], *bad, good[1]]})
    assert response.status_code == 400
    body = response.json()
    assert "nothing was stored" in body["detail"]
    by_index = {}
    for error in body["errors"]:
        by_index.setdefault(error["index"], []).append((error["field"], error["message"]))
    assert set(by_index) == set(range(1, 12)), "every bad event, and only those, is reported"
    assert by_index[1] == [("event_id", "is required")]
    assert by_index[2] == [("event_id", "'not-a-uuid' is not a UUID")]
    assert by_index[3] == [("product", "unknown product 'nope'")]
    assert by_index[4][0][0] == "event" and "usage event of product 'alpha' (alpha_used)" in by_index[4][0][1]
    assert by_index[5][0][0] == "timestamp" and "is not an ISO 8601 date-time" in by_index[5][0][1]
    assert by_index[6][0][0] == "timestamp" and "is in the future" in by_index[6][0][1]
    assert by_index[7] == [("properties.rating", "rating_submitted needs a whole number 1-5, got 9")]
    assert by_index[8] == [("properties.location", "unknown location code 'store-9999'")]
    assert by_index[9] == [("user_id", "is required")]
    assert by_index[10] == [("", "expected a JSON object, got str")]
    assert by_index[11][0][0] == "colour" and "unknown field(s) colour" in by_index[11][0][1]
    assert Event.objects.count() == 0, "a batch with invalid events is refused whole"


def test_the_error_carries_the_event_id_the_client_sent(api):
    event = ev("alpha", "u1", "alpha_used", T0, location="store-9999")
    error = api({"events": [event]}).json()["errors"][0]
    assert error["event_id"] == event["event_id"]
    assert error["index"] == 0


def test_a_timestamp_without_offset_is_utc_and_a_little_clock_skew_is_allowed(api):
    naive = ev("alpha", "u1", "alpha_used", T0)
    naive["timestamp"] = "2025-03-03T09:00:00"
    skewed = ev("alpha", "u2", "alpha_used", timezone.now() + timedelta(minutes=5))
    assert api({"events": [naive, skewed]}).status_code == 200
    assert Event.objects.get(user_id="u1").timestamp == T0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "the body must be a JSON object with a list 'events'"),
        ({"events": "x"}, "the body must be a JSON object with a list 'events'"),
        ({"events": []}, "the list is empty"),
    ],
)
def test_a_malformed_envelope_is_refused(api, body, message):
    response = api(body)
    assert response.status_code == 400
    assert response.json() == {"events": [message]}


def test_more_than_1000_events_are_refused(api):
    response = api({"events": _batch(1001)})
    assert response.status_code == 400
    assert "at most 1,000 events" in response.json()["events"][0]
    assert Event.objects.count() == 0


def test_a_read_token_cannot_post_events(client, catalog):
    _, key = api_token_create(user=catalog["owner"], name="reader", scope=ApiToken.Scope.READ)
    response = client.post(
        URL, {"events": _batch(1)}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {key}"
    )
    assert response.status_code == 403
    assert Event.objects.count() == 0


def test_a_write_token_of_any_role_may_post_events(client, catalog):
    # Until tokens have an ingestion scope, ingestion jobs use a write token of any role.
    key = write_token(UserFactory(username="exec-job", role=Role.EXECUTIVE))
    response = client.post(
        URL, {"events": _batch(2)}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {key}"
    )
    assert response.status_code == 200


def test_properties_are_kept_and_location_role_rating_copied_out(api, catalog):
    event = ev("alpha", "u1", "rating_submitted", T0, location="store-0003", role="manager", rating=4, shift=None)
    event.pop("shift")
    event["properties"]["shift"] = "early"
    api({"events": [event]})
    stored = Event.objects.get()
    assert stored.properties == {"location": "store-0003", "role": "manager", "rating": 4, "shift": "early"}
    assert (stored.location.code, stored.region.code, stored.role, stored.rating) == (
        "store-0003",
        "region-south",
        "manager",
        4,
    )
    assert stored.day == T0.date()


def test_a_region_code_as_location_sets_the_region(api):
    api({"events": [ev("alpha", "u1", "alpha_used", T0, location="region-north")]})
    stored = Event.objects.get()
    assert stored.location.code == "region-north" and stored.region.code == "region-north"


def test_stored_events_mark_their_days_for_the_rollup_and_a_refresh_clears_them(api, catalog):
    api({"events": [*_batch(2), ev("alpha", "u9", "alpha_used", T0 + timedelta(days=2))]})
    alpha = catalog["products"]["alpha"]
    assert set(RollupMark.objects.values_list("product_id", "day")) == {
        (alpha.pk, T0.date()),
        (alpha.pk, T0.date() + timedelta(days=2)),
    }
    assert rollups_refresh(product_id=alpha.pk) == 2
    assert not RollupMark.objects.exists()
    assert UserDay.objects.filter(product=alpha).count() == 3


def test_events_arriving_days_late_are_flagged_and_rebuild_their_day(api, catalog):
    alpha = catalog["products"]["alpha"]
    api({"events": _batch(3)})
    rollups_refresh(product_id=alpha.pk)
    assert UserDay.objects.get(product=alpha, user_id="user-0").usage_events == 1

    late = ev("alpha", "user-0", "alpha_used", T0 + timedelta(hours=3), location="store-0001", role="clerk")
    api({"events": [late]})
    assert Event.objects.get(event_id=uuid.UUID(late["event_id"])).backfill is True
    rollups_refresh(product_id=alpha.pk)
    row = UserDay.objects.get(product=alpha, user_id="user-0")
    assert (row.usage_events, row.sessions) == (2, 2), "3 hours apart: a second session"


def test_a_batch_arriving_during_a_refresh_leaves_its_day_marked(catalog, monkeypatch):
    """The mark's token changes with every batch; a refresh clears only the tokens it read, so a day
    re-marked while it was being rebuilt is rebuilt again next time."""
    from apps.adoption import services

    alpha = catalog["products"]["alpha"]
    events_ingest(_batch(1), schedule_refresh=False)
    rebuild = services._rebuild_days

    def rebuild_while_a_batch_arrives(*args, **kwargs):
        rebuild(*args, **kwargs)
        events_ingest([ev("alpha", "late", "alpha_used", T0 + timedelta(hours=1))], schedule_refresh=False)

    monkeypatch.setattr(services, "_rebuild_days", rebuild_while_a_batch_arrives)
    rollups_refresh(product_id=alpha.pk)
    assert RollupMark.objects.filter(day=T0.date()).exists(), "the late batch's mark survives"
    assert not UserDay.objects.filter(user_id="late").exists()

    monkeypatch.setattr(services, "_rebuild_days", rebuild)
    rollups_refresh(product_id=alpha.pk)
    assert not RollupMark.objects.exists()
    assert UserDay.objects.filter(user_id="late").exists()


def test_changing_a_products_usage_events_rebuilds_its_rollup(api, catalog):
    beta = catalog["products"]["beta"]
    api({"events": [ev("beta", "u1", "beta_opened", T0), ev("beta", "u2", "beta_done", T0)]})
    rollups_refresh(product_id=beta.pk)
    assert UserDay.objects.filter(product=beta, usage_events__gt=0).count() == 2
    beta.usage_event_names = ["beta_done"]
    beta.save()
    rollups_refresh(product_id=beta.pk)
    assert list(UserDay.objects.filter(product=beta, usage_events__gt=0).values_list("user_id", flat=True)) == ["u2"]


def test_a_stored_batch_queues_one_rollup_refresh_per_product_after_commit(catalog, django_capture_on_commit_callbacks):
    batch = [*_batch(3), ev("beta", "u1", "beta_done", T0)]
    with django_capture_on_commit_callbacks() as callbacks:
        events_ingest(batch)
    assert len(callbacks) == 2
    with django_capture_on_commit_callbacks() as callbacks:
        events_ingest(batch)  # all duplicates: nothing changed, nothing queued
    assert callbacks == []


def test_an_id_in_another_spelling_is_the_same_event(api):
    event = _batch(1)[0]
    upper = {**event, "event_id": event["event_id"].upper()}
    braces = {**event, "event_id": "{" + event["event_id"].replace("-", "") + "}"}
    response = api({"events": [event, upper, braces]})
    assert (response.json()["accepted"], response.json()["duplicates"]) == (1, 2)
    assert Event.objects.get().event_id == uuid.UUID(event["event_id"])
