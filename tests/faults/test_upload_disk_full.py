"""Uploads on a full disk: the admin is told "could not store the upload: no space left on device", nothing is
imported and no partial file stays in the upload folder.

The disk really is full, no mocks: the upload folder is a 64 KiB tmpfs (ENOSPC), and separately the process's
file-size limit is lowered to 64 KiB with SIGXFSZ ignored (EFBIG), which needs no mount. Two ways a write fails:

- a small upload is kept in memory by Django and fails when the billing upload copies it into the upload folder;
- a large one (over FILE_UPLOAD_MAX_MEMORY_SIZE) fails while Django spools it to the upload folder, before any
  view runs: billing files and units of service, adoption events and delivery CSVs alike.
"""

import contextlib
import resource
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from apps.accounts.roles import Role
from apps.adoption.models import Event
from apps.billing.models import BillingImport, BillingSource, UnitVolume
from apps.delivery.models import DeliveryImport
from tests.conftest import require_server

pytestmark = pytest.mark.django_db

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "focus-1.0_sample_1000.csv"
LIMIT = 64 * 1024


@contextlib.contextmanager
def _tmpfs(path: Path, size: str):
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        require_server("a small tmpfs", f"mount -t tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def _file_size_limit(limit: int):
    """Writes past ``limit`` bytes fail with EFBIG (SIGXFSZ ignored, so the process is not killed)."""
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.fixture(params=["tmpfs", "file-size-limit"])
def full_disk(request, tmp_path):
    """An upload folder that cannot take more than 64 KiB; ``while_full()`` wraps the request that must fail."""
    if request.param == "tmpfs":
        mount = tmp_path / "small"
        with _tmpfs(mount, "64k"):
            folder = mount / "uploads"
            folder.mkdir()
            with override_settings(UPLOAD_DIR=folder, FILE_UPLOAD_TEMP_DIR=str(folder / "tmp")):
                yield SimpleNamespace(
                    folder=folder,
                    reason="no space left on device",
                    while_full=contextlib.nullcontext,
                    make_room=lambda: subprocess.run(
                        ["mount", "-o", "remount,size=64m", str(mount)], check=True, capture_output=True
                    ),
                )
    else:
        folder = tmp_path / "uploads"
        folder.mkdir()
        with override_settings(UPLOAD_DIR=folder, FILE_UPLOAD_TEMP_DIR=str(folder / "tmp")):
            yield SimpleNamespace(
                folder=folder,
                reason="file too large",
                while_full=lambda: _file_size_limit(LIMIT),
                make_room=lambda: None,
            )


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.fixture
def admin(role_client):
    return role_client(Role.ADMIN)


@pytest.fixture
def source():
    return BillingSource.objects.create(name="aws-focus")


def _big_csv(header: str, row: str) -> bytes:
    """A CSV over the in-memory limit (FILE_UPLOAD_MAX_MEMORY_SIZE), so it is spooled to the upload folder."""
    line = row.encode() + b"\n"
    size = settings.FILE_UPLOAD_MAX_MEMORY_SIZE + 1024 * 1024
    return header.encode() + b"\n" + line * (size // len(line) + 1)


def test_a_billing_upload_that_cannot_be_stored_is_refused_clearly_and_leaves_nothing(full_disk, admin, source):
    url = reverse("billing:source-upload", args=[source.pk])
    upload = SimpleUploadedFile("2024-09.csv", SAMPLE.read_bytes(), content_type="text/csv")
    with full_disk.while_full():
        response = admin.post(url, {"file": upload})
    assert response.status_code == 200  # the upload form again, with the reason
    expected = f"could not store the upload 2024-09.csv: {full_disk.reason}; nothing was imported"
    assert expected in response.content.decode()
    assert not BillingImport.objects.exists()
    assert _files(full_disk.folder) == []

    # With room on the disk the very same upload is stored and queued.
    full_disk.make_room()
    upload.seek(0)
    response = admin.post(url, {"file": upload})
    imported = BillingImport.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("billing:import-detail", args=[imported.pk])
    stored = _files(full_disk.folder)
    assert [p.read_bytes() == SAMPLE.read_bytes() for p in stored] == [True]


def test_a_billing_upload_over_the_api_that_cannot_be_stored_answers_the_reason(full_disk, admin, source):
    upload = SimpleUploadedFile("2024-09.csv", SAMPLE.read_bytes(), content_type="text/csv")
    with full_disk.while_full():
        response = admin.post("/api/v1/billing/imports/", {"source": source.pk, "file": upload})
    assert response.status_code == 400
    assert (
        response.json()["detail"] == f"could not store the upload 2024-09.csv: {full_disk.reason}; nothing was imported"
    )
    assert not BillingImport.objects.exists()
    assert _files(full_disk.folder) == []


def _large_uploads(source) -> list[tuple[str, dict, type, str]]:
    """(page, form data, model that must stay empty, file name) for every upload form of the portal."""
    focus_header, focus_row = SAMPLE.read_text().splitlines()[:2]
    return [
        (
            reverse("billing:source-upload", args=[source.pk]),
            {"file": SimpleUploadedFile("big-focus.csv", _big_csv(focus_header, focus_row), "text/csv")},
            BillingImport,
            "big-focus.csv",
        ),
        (
            reverse("billing:units"),
            {
                "file": SimpleUploadedFile(
                    "units.csv", _big_csv("service,date,units", "ranker,2026-11-01,5"), "text/csv"
                )
            },
            UnitVolume,
            "units.csv",
        ),
        (
            reverse("adoption:import"),
            {
                "file": SimpleUploadedFile(
                    "events.csv",
                    _big_csv("product,user_id,event,timestamp", "smart-cart,u1,session_start,2026-11-01T08:00:00Z"),
                    "text/csv",
                )
            },
            Event,
            "events.csv",
        ),
        (
            reverse("delivery:import"),
            {
                "kind": "deployments",
                "file": SimpleUploadedFile("deploys.csv", _big_csv("id,service,deployed_at", "d1,x,2026"), "text/csv"),
            },
            DeliveryImport,
            "deploys.csv",
        ),
    ]


def test_a_large_upload_that_cannot_be_spooled_is_refused_on_every_upload_page(full_disk, admin, source):
    for page, data, model, name in _large_uploads(source):
        with full_disk.while_full():
            response = admin.post(page, data)
        # Back to the page the upload came from (GET), where the message says why.
        assert response.status_code == 303 and response["Location"] == page, (page, response.status_code)
        shown = admin.get(page).content.decode()
        assert f"Could not store the upload {name}: {full_disk.reason}; nothing was imported." in shown, page
        assert not model.objects.exists(), page
        assert _files(full_disk.folder) == [], page


def test_a_large_api_upload_that_cannot_be_spooled_answers_507(full_disk, admin, source):
    focus_header, focus_row = SAMPLE.read_text().splitlines()[:2]
    upload = SimpleUploadedFile("big-focus.csv", _big_csv(focus_header, focus_row), "text/csv")
    with full_disk.while_full():
        response = admin.post("/api/v1/billing/imports/", {"source": source.pk, "file": upload})
    assert response.status_code == 507
    assert response.json() == {
        "detail": f"could not store the upload big-focus.csv: {full_disk.reason}; nothing was imported"
    }
    assert not BillingImport.objects.exists()
    assert _files(full_disk.folder) == []
