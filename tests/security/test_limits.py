"""Oversized requests, files and batches are refused early, with a message naming the limit, and store nothing."""

import uuid
from datetime import UTC, datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from apps.adoption.models import Event, NpsResponse
from apps.billing.models import BillingImport, BillingSource, UnitVolume
from apps.delivery.models import Change, DeliveryImport, Feature
from apps.delivery.services import MAX_API_ITEMS
from apps.telemetry.models import Point
from tests.adoption.factories import make_catalog

pytestmark = pytest.mark.django_db
T = "2026-11-02T10:00:00Z"


@pytest.fixture
def api(admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


@pytest.fixture
def uploads(settings, tmp_path):
    settings.UPLOAD_DIR = tmp_path / "uploads"
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "spool")
    return settings.UPLOAD_DIR


def _stored_files(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# --- The whole request -------------------------------------------------------------------------------------


def test_a_json_body_over_the_request_limit_gets_413_before_it_is_read(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_000
    points = [{"metric": "gpu_used", "pool": "p", "timestamp": T, "value": i} for i in range(100)]
    response = api.post("/api/v1/telemetry/", {"points": points}, format="json")
    assert response.status_code == 413
    assert "at most 2,000 bytes" in response.json()["detail"]
    events = [{"event_id": str(uuid.uuid4()), "product": "x", "user_id": "u", "event": "e", "timestamp": T}] * 50
    response = api.post("/api/v1/events/batch/", {"events": events}, format="json")
    assert response.status_code == 413 and "at most 2,000 bytes" in response.json()["detail"]
    assert Point.objects.count() == 0 and Event.objects.count() == 0


def test_a_body_within_the_limit_goes_through(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_000
    response = api.post("/api/v1/telemetry/", {"points": []}, format="json")
    assert response.status_code == 400  # read and refused for what it says, not for its size
    assert "no points" in response.json()["detail"]


def test_an_upload_larger_than_any_file_limit_gets_413_before_it_is_spooled(api, settings, uploads):
    settings.MAX_UPLOAD_BYTES = 1_000
    settings.MAX_CSV_UPLOAD_BYTES = 1_000
    source = BillingSource.objects.create(name="aws")
    big = SimpleUploadedFile("huge.csv", b"x" * (2 * 1024 * 1024))
    response = api.post(reverse("billing-import-list"), {"source": source.pk, "file": big})
    assert response.status_code == 413
    assert "for an upload" in response.json()["detail"]
    assert BillingImport.objects.count() == 0
    assert (
        _stored_files(uploads) == [] and _stored_files(settings.FILE_UPLOAD_TEMP_DIR and uploads.parent / "spool") == []
    )


def test_a_page_upload_over_the_limit_gets_a_plain_413(admin_client_portal, settings, uploads):
    settings.MAX_UPLOAD_BYTES = 1_000
    settings.MAX_CSV_UPLOAD_BYTES = 1_000
    make_catalog()
    big = SimpleUploadedFile("events.csv", b"x" * (2 * 1024 * 1024), "text/csv")
    response = admin_client_portal.post(reverse("adoption:import"), {"file": big})
    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/plain")
    assert "accepts at most" in response.content.decode()
    assert Event.objects.count() == 0


# --- One file ----------------------------------------------------------------------------------------------


def test_a_billing_file_over_its_limit_is_refused_naming_the_limit(api, settings, uploads):
    settings.MAX_UPLOAD_BYTES = 1_000
    source = BillingSource.objects.create(name="aws")
    content = b"BilledCost\n" + b"1\n" * 2_000
    response = api.post(
        reverse("billing-import-list"), {"source": source.pk, "file": SimpleUploadedFile("m.csv", content)}
    )
    assert response.status_code == 400
    [message] = response.json()["file"]
    assert message.startswith(f"m.csv is {len(content):,} bytes; a billing file may be at most 1,000 bytes")
    assert "OPSPORTAL_MAX_UPLOAD_MB" in message
    assert BillingImport.objects.count() == 0 and _stored_files(uploads) == []


def test_an_adoption_csv_over_its_limit_is_refused_on_the_page(admin_client_portal, settings):
    settings.MAX_CSV_UPLOAD_BYTES = 100
    make_catalog()
    header = "event_id,product,user_id,event,timestamp,location,role,rating,properties\n"
    content = (header + f",alpha,emp-1,trial_requested,{T},store-0001,clerk,,\n" * 5).encode()
    response = admin_client_portal.post(reverse("adoption:import"), {"file": SimpleUploadedFile("e.csv", content)})
    html = response.content.decode()
    assert f"e.csv is {len(content):,} bytes; a CSV import may be at most 100 bytes" in html
    assert "OPSPORTAL_MAX_CSV_UPLOAD_MB" in html
    assert Event.objects.count() == 0


def test_a_delivery_csv_over_its_limit_is_refused_by_the_api(api, settings):
    settings.MAX_CSV_UPLOAD_BYTES = 100
    content = b"sha,committed_at\n" + b"a" * 40 + b",2026-11-02T10:00:00Z\n" * 5
    upload = SimpleUploadedFile("c.csv", content, "text/csv")
    response = api.post(reverse("delivery-import-list"), {"kind": "changes", "file": upload})
    assert response.status_code == 400
    [message] = response.json()["file"]
    assert f"c.csv is {len(content):,} bytes; a CSV import may be at most 100 bytes" in message
    assert DeliveryImport.objects.count() == 0


def test_a_delivery_csv_over_its_limit_is_refused_on_the_page(admin_client_portal, settings):
    settings.MAX_CSV_UPLOAD_BYTES = 100
    content = b"sha,committed_at\n" + b"a" * 40 + b",2026-11-02T10:00:00Z\n" * 5
    response = admin_client_portal.post(
        reverse("delivery:import"), {"kind": "changes", "file": SimpleUploadedFile("c.csv", content, "text/csv")}
    )
    assert "a CSV import may be at most 100 bytes" in response.content.decode()
    assert DeliveryImport.objects.count() == 0


# --- Batches inside a body ---------------------------------------------------------------------------------


def test_a_telemetry_batch_over_its_limit_is_refused_naming_it(api):
    points = [{"metric": "gpu_used", "pool": "p", "timestamp": T, "value": 1}] * 10_001
    response = api.post("/api/v1/telemetry/", {"points": points}, format="json")
    assert response.status_code == 400
    assert "at most 10000 points" in response.json()["detail"]
    assert Point.objects.count() == 0


def test_an_event_batch_over_its_limit_is_refused_naming_it(api):
    catalog = make_catalog()
    events = [
        {"event_id": str(uuid.uuid4()), "product": "alpha", "user_id": "u", "event": "alpha_used", "timestamp": T}
        for _ in range(1_001)
    ]
    response = api.post("/api/v1/events/batch/", {"events": events}, format="json")
    assert response.status_code == 400
    assert "at most 1,000 events" in response.json()["events"][0]
    assert Event.objects.count() == 0
    answers = [{"campaign": "c", "respondent": f"u{i}", "score": 9} for i in range(1_001)]
    response = api.post("/api/v1/nps/responses/", {"responses": answers}, format="json")
    assert response.status_code == 400
    assert "at most 1,000 responses" in response.json()["responses"][0]
    assert NpsResponse.objects.count() == 0 and catalog["products"]["alpha"].pk


def test_a_delivery_batch_over_its_limit_is_refused_naming_it(api):
    items = [{"sha": f"{i:040x}", "committed_at": T} for i in range(MAX_API_ITEMS + 1)]
    response = api.post("/api/v1/delivery/changes/", {"source": "api", "items": items}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert f"at most {MAX_API_ITEMS:,} records per batch" in body["detail"]
    assert body["errors"][0]["column"] == "items"
    assert Change.objects.count() == 0 and Feature.objects.count() == 0


def test_a_units_batch_over_its_limit_is_refused_naming_it(api):
    items = [{"service": "s", "date": datetime(2026, 1, 1, tzinfo=UTC).date().isoformat(), "units": 1}] * 20_001
    response = api.post("/api/v1/billing/units/", items, format="json")
    assert response.status_code == 400
    assert "send at most 20,000 per request" in response.json()["detail"]
    assert UnitVolume.objects.count() == 0
