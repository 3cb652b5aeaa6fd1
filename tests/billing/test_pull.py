"""Scheduled pulls: new or changed files are imported once; a failing source is recorded and retried.

The URL cases use a real HTTP server on 127.0.0.1 started by the test.
"""

import csv
import hashlib
import shutil
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.utils import timezone

from apps.billing import services
from apps.billing.models import BillingImport, BillingLineItem, BillingSource
from apps.billing.tasks import billing_pull_due_sources_task, billing_pull_source_task

pytestmark = pytest.mark.django_db

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "focus-1.0_sample_1000.csv"


def _run_queued(django_capture_on_commit_callbacks, fn):
    """Run fn and then the import tasks it queued on commit, as a worker would."""
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = fn()
    return result, callbacks


@pytest.fixture
def eager():
    """The import tasks a pull queues run in this process, as soon as the pull's transaction commits."""
    from opsportal.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def test_folder_pull_imports_new_and_changed_files_once(tmp_path, eager, django_capture_on_commit_callbacks):
    folder = tmp_path / "exports"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "2024-09.csv")
    (folder / ".partial").write_text("ignored: hidden files are being written")
    source = BillingSource.objects.create(name="aws-focus", location=str(folder))

    _run_queued(django_capture_on_commit_callbacks, lambda: services.billing_source_pull(source=source))
    assert BillingImport.objects.filter(status=BillingImport.Status.SUCCEEDED).count() == 1
    assert BillingLineItem.objects.count() == 1000

    queued, _ = _run_queued(django_capture_on_commit_callbacks, lambda: services.billing_source_pull(source=source))
    assert queued == []  # unchanged file: not imported again

    with open(SAMPLE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    restated = rows[:500]  # the provider re-delivers the file with half the rows
    with open(folder / "2024-09.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(restated)
    queued, _ = _run_queued(django_capture_on_commit_callbacks, lambda: services.billing_source_pull(source=source))
    assert len(queued) == 1
    covered = {r["BillingPeriodStart"] for r in restated}
    untouched = [r for r in rows if r["BillingPeriodStart"] not in covered]  # periods the new file does not cover
    assert BillingLineItem.objects.count() == len(restated) + len(untouched)  # replaced, not added


class _Handler(BaseHTTPRequestHandler):
    body = SAMPLE.read_bytes()
    status = 200
    requests: list[dict] = []

    def do_GET(self):  # http.server calls it by this name
        type(self).requests.append(
            {"auth": self.headers.get("Authorization"), "inm": self.headers.get("If-None-Match")}
        )
        etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'
        if self.status != 200:
            self.send_response(self.status)
            self.end_headers()
            return
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    _Handler.requests, _Handler.status, _Handler.body = [], 200, SAMPLE.read_bytes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/export.csv", _Handler
    server.shutdown()
    server.server_close()


def test_url_pull_sends_the_named_credential_and_uses_the_etag(
    http_server, eager, monkeypatch, django_capture_on_commit_callbacks
):
    url, handler = http_server
    monkeypatch.setenv("OPSPORTAL_TEST_BILLING_AUTH", "Bearer s3cret")
    source = BillingSource.objects.create(name="url", location=url, auth_env_var="OPSPORTAL_TEST_BILLING_AUTH")
    assert "s3cret" not in str(BillingSource.objects.filter(pk=source.pk).values().get())  # never stored

    _run_queued(django_capture_on_commit_callbacks, lambda: services.billing_source_pull(source=source))
    assert BillingLineItem.objects.count() == 1000
    assert handler.requests[-1] == {"auth": "Bearer s3cret", "inm": None}

    queued, _ = _run_queued(django_capture_on_commit_callbacks, lambda: services.billing_source_pull(source=source))
    assert queued == [] and handler.requests[-1]["inm"] is not None  # 304: nothing downloaded again
    assert BillingImport.objects.count() == 1


def test_failing_url_is_recorded_on_the_source_and_retried_with_backoff(http_server):
    url, handler = http_server
    handler.status = 500
    source = BillingSource.objects.create(name="flaky", location=url)
    with pytest.raises(services.SourceUnavailable):
        services.billing_source_pull(source=source)

    result = billing_pull_source_task.apply(args=[source.pk])  # the task records, then retries
    source.refresh_from_db()
    assert source.status == BillingSource.Status.FAILING
    assert "HTTP 500" in source.last_error
    assert source.consecutive_failures >= 1
    assert source.next_pull_at > timezone.now()
    assert result.state in ("RETRY", "FAILURE")
    assert BillingImport.objects.count() == 0  # nothing half-imported

    handler.status = 200
    source.next_pull_at = timezone.now() - timedelta(seconds=1)
    source.save()
    assert billing_pull_source_task.apply(args=[source.pk]).get() == 1
    source.refresh_from_db()
    assert (source.status, source.consecutive_failures, source.last_error) == (BillingSource.Status.OK, 0, "")


def test_missing_credential_variable_is_a_clear_failure(http_server):
    url, _ = http_server
    source = BillingSource.objects.create(name="no-cred", location=url, auth_env_var="OPSPORTAL_NOT_SET_ANYWHERE")
    with pytest.raises(services.SourceUnavailable, match="OPSPORTAL_NOT_SET_ANYWHERE"):
        services.billing_source_pull(source=source)


def test_due_sources_are_pulled_and_disabled_ones_are_not(tmp_path, monkeypatch):
    BillingSource.objects.create(name="due", location=str(tmp_path))
    BillingSource.objects.create(name="off", location=str(tmp_path), enabled=False)
    BillingSource.objects.create(name="later", location=str(tmp_path), next_pull_at=timezone.now() + timedelta(hours=1))
    pulled = []
    monkeypatch.setattr(billing_pull_source_task, "delay", lambda source_id: pulled.append(source_id))
    assert billing_pull_due_sources_task.apply().get() == 1
    assert pulled == [BillingSource.objects.get(name="due").pk]


def test_a_source_reads_only_inside_the_allowed_folders(tmp_path, settings, eager, django_capture_on_commit_callbacks):
    """Local sources read only under BILLING_LOCAL_ROOTS: a folder outside, or a symbolic link leading out of
    one, is refused at pull time with the reason, and nothing is imported."""
    allowed, elsewhere = tmp_path / "exports", tmp_path / "elsewhere"
    allowed.mkdir()
    elsewhere.mkdir()
    shutil.copy(SAMPLE, elsewhere / "secret.csv")
    settings.BILLING_LOCAL_ROOTS = [str(allowed)]

    outside = BillingSource.objects.create(name="outside", location=str(elsewhere))  # saved before the roots changed
    with pytest.raises(services.SourceUnavailable, match="is outside the folders billing exports may be read from"):
        services.billing_source_pull(source=outside)

    (allowed / "2024-09.csv").symlink_to(elsewhere / "secret.csv")
    linked = BillingSource.objects.create(name="linked", location=str(allowed))
    with pytest.raises(services.SourceUnavailable, match=r"2024-09\.csv leads outside the folders"):
        services.billing_source_pull(source=linked)
    assert not BillingImport.objects.exists() and not BillingLineItem.objects.exists()

    (allowed / "2024-09.csv").unlink()
    shutil.copy(SAMPLE, allowed / "2024-09.csv")
    _run_queued(django_capture_on_commit_callbacks, lambda: services.billing_source_pull(source=linked))
    assert BillingLineItem.objects.count() == 1000
