"""Billing sources, uploads and imports as admins run them and executives read them."""

import re
from html import unescape

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.accounts.roles import Role
from apps.billing import importer, services
from apps.billing.models import BillingImport, BillingSource

from .test_unit_cost import MARCH_ITEMS, focus_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def cfo(role_client):
    return role_client(Role.EXECUTIVE)


@pytest.fixture
def admin(role_client):
    return role_client(Role.ADMIN)


@pytest.fixture
def uploads(settings, tmp_path):
    settings.UPLOAD_DIR = tmp_path / "uploads"
    return settings.UPLOAD_DIR


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    return BillingSource.objects.create(name="AWS payer", format="focus", location=str(folder))


def _text(response) -> str:
    return unescape(re.sub(r"\s+", " ", response.content.decode()))


def _field_errors(response, field: str) -> list[str]:
    return [unescape(e) for e in re.findall(rf'data-field="{field}">([^<]+)<', response.content.decode())]


def test_sources_list_shows_ok_and_failing_sources_with_the_error_and_next_retry(source, cfo, admin):
    failing = BillingSource.objects.create(name="Azure EA", location="/data/nonexistent/azure")
    services.billing_source_record_pull(source=failing, error="/nonexistent/azure: no such file or folder")
    services.billing_source_record_pull(source=source, error=None)
    html = _text(cfo.get(reverse("billing:sources")))
    row = re.search(r'data-source="Azure EA">(.*?)</tr>', html).group(1)
    assert "Failing" in row and "/nonexistent/azure: no such file or folder" in row
    assert "1 failure in a row; next retry" in row
    assert "OK" in re.search(r'data-source="AWS payer">(.*?)</tr>', html).group(1)
    assert "Add a source" not in html
    assert "Add a source" in _text(admin.get(reverse("billing:sources")))


def test_admin_adds_and_edits_a_source(admin):
    data = {
        "name": "GCP billing",
        "format": "gcp",
        "location": "https://exports.example.com/gcp/latest.csv.gz",
        "auth_env_var": "GCP_EXPORT_TOKEN",
        "pull_every_minutes": "30",
        "enabled": "on",
    }
    response = admin.post(reverse("billing:source-create"), data)
    created = BillingSource.objects.get(name="GCP billing")
    assert response["Location"] == reverse("billing:source-detail", args=[created.pk])
    assert (created.format, created.auth_env_var, created.pull_every_minutes) == ("gcp", "GCP_EXPORT_TOKEN", 30)
    data.update(location="/data/exports/gcp/*.parquet", auth_env_var="")
    assert admin.post(reverse("billing:source-edit", args=[created.pk]), data).status_code == 302
    created.refresh_from_db()
    assert created.location == "/data/exports/gcp/*.parquet"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"location": "exports/aws"}, "location", "'exports/aws' is not an absolute path"),
        ({"location": "s3://bucket/cur/"}, "location", "s3:// is not supported"),
        ({"location": "https:///no-host"}, "location", "has no host name"),
        ({"location": "https://ops:s3cret@x.example.com/a.csv"}, "location", "carries a user name or password"),
        ({"auth_env_var": "Bearer abc123"}, "auth_env_var", "is not an environment variable name"),
        ({"location": "/data/aws", "auth_env_var": "AWS_TOKEN"}, "auth_env_var", "only used for http(s) URLs"),
        ({"pull_every_minutes": "1"}, "pull_every_minutes", "greater than or equal to 5"),
        ({"name": "AWS payer"}, "name", "already exists"),
    ],
)
def test_a_bad_source_is_refused_with_the_reason_and_nothing_is_saved(source, admin, changes, field, message):
    data = {"name": "New source", "format": "auto", "location": "https://x.example.com/a.csv", "pull_every_minutes": 60}
    response = admin.post(reverse("billing:source-create"), data | changes)
    assert response.status_code == 200
    assert any(message in e for e in _field_errors(response, field)), _field_errors(response, field)
    assert BillingSource.objects.count() == 1
    # The credential itself is never echoed back in an error.
    if changes.get("auth_env_var", "").startswith("Bearer"):
        assert "abc123" not in " ".join(_field_errors(response, field))
    assert "s3cret" not in " ".join(_field_errors(response, field))


def test_source_page_lists_imports_with_their_totals_and_who_started_them(source, cfo, tmp_path, users):
    good = services.billing_import_path(source=source, path=str(focus_file(tmp_path, "march.csv", MARCH_ITEMS)))
    bad_items = [{"day": MARCH_ITEMS[0]["day"], "billed": "12,50 USD", "effective": "1"}]
    services.billing_import_path(source=source, path=str(focus_file(tmp_path, "bad.csv", bad_items)))
    html = _text(cfo.get(reverse("billing:source-detail", args=[source.pk])))
    table = re.search(r'data-testid="imports-table">(.*?)</table>', html).group(1)
    assert "march.csv" in table and good.checksum[:10] in table and "2026-03-01" in table
    assert re.search(r"560\.00<div class=\"muted small\">USD", table)  # BilledCost of the six rows
    assert re.search(r"500\.00<div class=\"muted small\">USD", table)  # EffectiveCost
    assert "Succeeded" in table and "Failed" in table and "Command line" in table
    assert "Pull now" not in html and "Upload a file" not in html  # executives read only


def test_import_page_lists_row_errors_and_conformance_warnings(source, cfo, tmp_path):
    bad_items = [MARCH_ITEMS[0], {"day": MARCH_ITEMS[0]["day"], "billed": "12,50 USD", "effective": "1"}]
    failed = services.billing_import_path(source=source, path=str(focus_file(tmp_path, "bad.csv", bad_items)))
    html = _text(cfo.get(reverse("billing:import-detail", args=[failed.pk])))
    assert "Rejected: nothing was imported" in html
    errors = re.search(r'data-testid="import-errors">(.*?)</table>', html).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", errors)
    assert cells[:3] == ["3", "BilledCost", "<code>12,50 USD</code>"]  # row 3: the second data row
    assert "is not a number" in errors and "a decimal such as 12.50" in errors

    good = services.billing_import_path(source=source, path=str(focus_file(tmp_path, "march.csv", MARCH_ITEMS)))
    html = _text(cfo.get(reverse("billing:import-detail", args=[good.pk])))
    assert "Imported 6 rows" in html and "2026-03-01" in html
    warnings = re.search(r'data-testid="import-warnings">(.*?)</table>', html).group(1)
    assert "A mandatory FOCUS column is absent from the file" in warnings and "PublisherName" in warnings


def test_upload_is_stored_queued_and_its_page_polls_until_the_worker_has_imported_it(
    source, admin, tmp_path, uploads, django_capture_on_commit_callbacks
):
    content = focus_file(tmp_path, "march.csv", MARCH_ITEMS).read_bytes()
    with django_capture_on_commit_callbacks() as queued:
        response = admin.post(
            reverse("billing:source-upload", args=[source.pk]),
            {"file": SimpleUploadedFile("march.csv", content), "format": ""},
        )
    billing_import = BillingImport.objects.get()
    assert response["Location"] == reverse("billing:import-detail", args=[billing_import.pk])
    assert len(queued) == 1  # the import task, sent once the upload is committed
    assert (billing_import.status, billing_import.trigger, billing_import.started_by.username) == (
        "queued",
        "upload",
        "adminuser",
    )
    progress_url = reverse("billing:import-progress", args=[billing_import.pk])
    page = _text(admin.get(reverse("billing:import-detail", args=[billing_import.pk])))
    assert f'hx-get="{progress_url}" hx-trigger="every 1s"' in page and "Queued: waiting for a worker" in page

    # A worker has started and reports progress.
    BillingImport.objects.filter(pk=billing_import.pk).update(status=BillingImport.Status.RUNNING)
    cache.set(importer.progress_key(billing_import.pk), {"rows": 5000, "percent": 40})
    fragment = _text(admin.get(progress_url))
    assert "<html" not in fragment and "5000 rows read · 40 % of the file" in fragment and "every 1s" in fragment

    services.billing_import_execute(import_id=billing_import.pk)  # what the worker runs
    fragment = _text(admin.get(progress_url))
    assert "Imported 6 rows" in fragment and "hx-trigger" not in fragment  # finished: polling stops
    assert "500.00 USD" in fragment


def test_a_wrong_format_override_shows_the_importers_reason(source, admin, tmp_path, uploads):
    content = focus_file(tmp_path, "march.csv", MARCH_ITEMS).read_bytes()
    admin.post(
        reverse("billing:source-upload", args=[source.pk]),
        {"file": SimpleUploadedFile("march.csv", content), "format": "aws_cur2"},
    )
    billing_import = BillingImport.objects.get()
    assert billing_import.format == "aws_cur2"
    services.billing_import_execute(import_id=billing_import.pk)
    fragment = _text(admin.get(reverse("billing:import-progress", args=[billing_import.pk])))
    assert "Rejected: nothing was imported" in fragment and "FOCUS" in fragment and "hx-trigger" not in fragment


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "The submitted file is empty"),
        ("costs.xlsx", b"PK\x03\x04rest-of-a-workbook", "costs.xlsx is a ZIP archive (an Excel workbook?)"),
        ("invoice.pdf", b"%PDF-1.7 ...", "invoice.pdf is a PDF document"),
    ],
)
def test_a_file_that_is_not_a_billing_export_is_refused_before_it_is_stored(
    source, admin, uploads, name, content, message
):
    response = admin.post(
        reverse("billing:source-upload", args=[source.pk]), {"file": SimpleUploadedFile(name, content)}
    )
    assert response.status_code == 200
    assert any(message in e for e in _field_errors(response, "file")), _field_errors(response, "file")
    assert not BillingImport.objects.exists()
    assert not any(uploads.rglob("*.*")) if uploads.exists() else True


def test_unknown_format_choice_is_refused(source, admin, uploads):
    response = admin.post(
        reverse("billing:source-upload", args=[source.pk]),
        {"file": SimpleUploadedFile("a.csv", b"a,b\n1,2\n"), "format": "excel"},
    )
    assert any("excel is not one of the available choices" in e for e in _field_errors(response, "format"))
    assert not BillingImport.objects.exists()


def test_pull_now_queues_a_pull_of_a_source_with_a_location(source, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        response = admin.post(reverse("billing:source-pull", args=[source.pk]), follow=True)
    assert len(queued) == 1
    assert "A pull of AWS payer is queued" in _text(response)
    uploads_only = BillingSource.objects.create(name="Uploads only")
    with django_capture_on_commit_callbacks() as queued:
        response = admin.post(reverse("billing:source-pull", args=[uploads_only.pk]), follow=True)
    assert queued == [] and "has no location to pull from" in _text(response)
