"""Connector faults against real servers on 127.0.0.1 that this test starts: a billing URL and a Prometheus URL that
hang (accept and never answer), answer 500, or send a truncated body (a Content-Length larger than what is sent,
or a gzip stream cut short).

Each fault must be recorded as a failed pull with a clear message on the source's page, retried with backoff,
import nothing and leave the earlier data intact; the next good pull then imports everything exactly once.
Timeouts come from settings, shortened here so a hanging server costs a second per attempt.
"""

import csv
import gzip
import hashlib
import io
import json
import math
import socket
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from django.db.models import Sum
from django.test import override_settings
from django.urls import reverse

from apps.accounts.roles import Role
from apps.billing import services as billing
from apps.billing.models import BillingImport, BillingLineItem, BillingSource
from apps.billing.tasks import billing_pull_source_task
from apps.telemetry.models import MetricMapping, Point, TelemetryPull
from apps.telemetry.services import source_pull
from apps.telemetry.tasks import pull_source_task
from tests.factories import EnvironmentFactory
from tests.telemetry.factories import CapacityPoolFactory, MetricMappingFactory, TelemetrySourceFactory

pytestmark = pytest.mark.django_db

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "focus-1.0_sample_1000.csv"
FAULTS = ["hang", "500", "short-body", "cut-gzip"]
SHORT_TIMEOUTS = {"OUTBOUND_CONNECT_TIMEOUT": 1, "BILLING_DOWNLOAD_TIMEOUT": 1, "PROMETHEUS_TIMEOUT_GRACE": 0}


class FaultyServer:
    """An HTTP server on 127.0.0.1 answering ``answer(handler)`` while ``mode`` is "good", else the fault:

    - hang: read the request, then never answer (the connection stays open until the server closes);
    - 500: an HTTP 500 with a short body;
    - short-body: the good answer's headers with its full Content-Length, half the body, then the connection closes;
    - cut-gzip: the good answer gzip-compressed and cut in half, with a Content-Length that matches what is sent
      (as a Content-Encoding for JSON, as the file itself for a .csv.gz download).
    """

    def __init__(self, answer) -> None:
        self.mode = "good"
        self.answer = answer  # handler -> (body, content type)
        self.requests: list[str] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.form = parse_qs(self.rfile.read(length).decode()) if length else {}
                server.requests.append(server.mode)
                mode = server.mode
                if mode == "hang":
                    server.release.wait(30)  # bounded: the server's close releases it
                    return
                if mode == "500":
                    return self._send(500, b'{"status":"error","error":"internal error"}', "application/json")
                body, kind = server.answer(self)
                if mode == "short-body":
                    self.send_response(200)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                if mode == "cut-gzip":
                    packed = gzip.compress(body)
                    cut = packed[: len(packed) // 2]
                    if kind == "application/json":
                        return self._send(200, cut, kind, {"Content-Encoding": "gzip"})
                    return self._send(200, cut, "application/gzip")
                return self._send(200, body, kind, {"ETag": '"' + hashlib.sha256(body).hexdigest()[:16] + '"'})

            def _send(self, status, body, kind, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle  # http.server's names

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def short_timeouts(tmp_path):
    with override_settings(**SHORT_TIMEOUTS, UPLOAD_DIR=tmp_path / "uploads"):
        yield


@pytest.fixture
def eager():
    """The import tasks a pull queues run in this process, as soon as the pull's transaction commits."""
    from opsportal.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def _stored_files(tmp_path) -> list[Path]:
    return [p for p in (tmp_path / "uploads").rglob("*") if p.is_file()]


# --- Billing --------------------------------------------------------------------------------------------------


def _rows() -> list[dict]:
    with open(SAMPLE, newline="") as fh:
        return list(csv.DictReader(fh))


def _csv(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _billed(rows: list[dict]) -> Decimal:
    return sum((Decimal(r["BilledCost"]) for r in rows), Decimal(0))


def _expected_backoff_minutes(failures: int, every: int) -> int:
    return min([1, 5, 15, 60][min(failures, 4) - 1], every)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failing_billing_url_is_recorded_retried_imports_nothing_and_the_next_good_pull_imports_once(
    fault, tmp_path, eager, django_capture_on_commit_callbacks, role_client
):
    rows = _rows()
    restated = rows[:600]  # the provider re-delivers the month with fewer rows
    served = {"body": _csv(rows)}
    server = FaultyServer(lambda handler: (served["body"], "text/csv"))
    suffix = ".csv.gz" if fault == "cut-gzip" else ".csv"
    source = BillingSource.objects.create(
        name="exports", location=f"{server.url}/focus{suffix}", pull_every_minutes=720
    )
    try:
        # Earlier data: a good pull of the whole month.
        with django_capture_on_commit_callbacks(execute=True):
            assert billing_pull_source_task.apply(args=[source.pk]).get() == 1
        assert BillingLineItem.objects.count() == len(rows)
        assert BillingLineItem.objects.aggregate(t=Sum("billed_cost"))["t"] == _billed(rows)

        # The restated month arrives while the server fails.
        served["body"] = _csv(restated)
        server.mode = fault
        before = len(server.requests)
        with django_capture_on_commit_callbacks(execute=True):
            outcome = billing_pull_source_task.apply(args=[source.pk])
        assert outcome.state in ("RETRY", "FAILURE")
        source.refresh_from_db()
        attempts = len(server.requests) - before
        assert attempts >= 2  # retried
        assert source.status == BillingSource.Status.FAILING
        assert source.consecutive_failures == attempts
        expected_message = {
            "hang": "no answer for 1 s (OPSPORTAL_BILLING_DOWNLOAD_TIMEOUT); nothing was imported",
            "500": "answered HTTP 500",
            "short-body": "the download was cut short",
            "cut-gzip": "the download is a gzip file that is cut short or damaged",
        }[fault]
        assert expected_message in source.last_error, source.last_error
        backoff = _expected_backoff_minutes(source.consecutive_failures, source.pull_every_minutes)
        assert source.next_pull_at - source.last_pulled_at == timedelta(minutes=backoff)

        # Nothing imported, nothing half-stored, the earlier month intact.
        assert BillingImport.objects.count() == 1
        assert BillingLineItem.objects.count() == len(rows)
        assert BillingLineItem.objects.aggregate(t=Sum("billed_cost"))["t"] == _billed(rows)
        assert len(_stored_files(tmp_path)) == 1  # the first pull's file only

        # The admin sees why on the source's page.
        page = role_client(Role.ADMIN).get(reverse("billing:source-detail", args=[source.pk])).content.decode()
        assert expected_message.split(" (")[0] in page.replace("&#x27;", "'")

        # Back to good: the restated month is imported, exactly once.
        server.mode = "good"
        if fault == "cut-gzip":
            served["body"] = gzip.compress(_csv(restated))
        for _ in range(2):
            with django_capture_on_commit_callbacks(execute=True):
                billing_pull_source_task.apply(args=[source.pk]).get()
        source.refresh_from_db()
        assert (source.status, source.consecutive_failures, source.last_error) == (BillingSource.Status.OK, 0, "")
        assert BillingImport.objects.filter(status=BillingImport.Status.SUCCEEDED).count() == 2
        covered = {r["BillingPeriodStart"] for r in restated}
        kept = restated + [r for r in rows if r["BillingPeriodStart"] not in covered]  # periods it does not cover
        assert BillingLineItem.objects.count() == len(kept)
        assert BillingLineItem.objects.aggregate(t=Sum("billed_cost"))["t"] == _billed(kept)
    finally:
        server.close()


# --- Prometheus -----------------------------------------------------------------------------------------------

STEP = 60


def _value(ts: float) -> float:
    return round(math.sin(ts / 3600) * 4 + 5, 6)


def _matrix(handler) -> tuple[bytes, str]:
    """A range query's answer: one gpu-pool series with a sample at every step of [start, end]."""
    start, end = (float(handler.form[k][0]) for k in ("start", "end"))
    stamps = range(int(start), int(end) + 1, STEP)
    body = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": {"pool": "gpu-pool"}, "values": [[ts, str(_value(ts))] for ts in stamps]}],
        },
    }
    return json.dumps(body).encode(), "application/json"


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failing_prometheus_is_recorded_retried_stores_nothing_and_the_next_good_pull_stores_once(fault, role_client):
    CapacityPoolFactory(slug="gpu-pool", environment=EnvironmentFactory(slug="prod"))
    server = FaultyServer(_matrix)
    source = TelemetrySourceFactory(
        base_url=server.url, step_seconds=STEP, backfill_hours=2, timeout_seconds=1, max_retries=2
    )
    MetricMappingFactory(source=source, metric="gpu_used", query="sum by (pool) (gpu_used)")
    t0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    try:
        first = source_pull(source=source, now=t0)
        assert first.status == TelemetryPull.Status.SUCCEEDED
        stored = list(Point.objects.order_by("ts").values_list("ts", "value"))
        expected_first = [(t0 - timedelta(hours=2) + timedelta(seconds=STEP * i)) for i in range(121)]
        assert [ts for ts, _ in stored] == expected_first
        assert all(v == _value(ts.timestamp()) for ts, v in stored)
        watermark = MetricMapping.objects.get().pulled_until
        assert watermark == t0

        server.mode = fault
        before = len(server.requests)
        outcome = pull_source_task.apply(args=[source.pk])
        assert outcome.state == "FAILURE"
        failed = list(TelemetryPull.objects.filter(status=TelemetryPull.Status.FAILED).order_by("attempt"))
        assert [p.attempt for p in failed] == [1, 2, 3]  # the first try and max_retries = 2 retries
        assert len(server.requests) - before == 3
        expected_message = {
            "hang": "did not answer within 1 s",
            "500": "answered HTTP 500: internal error",
            "short-body": "was cut short or damaged",
            "cut-gzip": "is not complete JSON",
        }[fault]
        assert all(p.retryable and expected_message in p.errors[0] for p in failed), [p.errors for p in failed]
        assert all(p.points_stored == 0 for p in failed)
        assert list(Point.objects.order_by("ts").values_list("ts", "value")) == stored  # nothing added or changed
        assert MetricMapping.objects.get().pulled_until == watermark

        # The admin sees the failure and why on the models page.
        page = role_client(Role.ADMIN).get(reverse("telemetry:models")).content.decode()
        assert "Failed" in page and expected_message in page.replace("&#x27;", "'")

        server.mode = "good"
        t1 = t0 + timedelta(minutes=30)
        recovered = source_pull(source=source, now=t1)
        assert recovered.status == TelemetryPull.Status.SUCCEEDED
        assert recovered.points_stored == 30
        points = list(Point.objects.order_by("ts").values_list("ts", "value"))
        expected = expected_first + [t0 + timedelta(seconds=STEP * i) for i in range(1, 31)]
        assert [ts for ts, _ in points] == expected  # every step once: no gap, no duplicate
        assert all(v == _value(ts.timestamp()) for ts, v in points)
    finally:
        server.close()


def test_a_port_that_never_accepts_fails_within_the_timeout_setting():
    """The connect timeout is a setting too: a port that accepts nothing (a full backlog) fails like a hang."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        source = BillingSource.objects.create(name="silent", location=f"http://127.0.0.1:{listener.getsockname()[1]}/x")
        # A server that never calls accept(): the connection may still complete in the kernel's backlog, so this
        # is a read timeout or a connect timeout; either way a clear failure within the configured time.
        with pytest.raises(billing.SourceUnavailable, match=r"no answer for 1 s|timed out"):
            billing.billing_source_pull(source=source)
    assert not BillingImport.objects.exists()
