"""Outbound URLs (billing sources, Prometheus sources, alert webhooks and Alertmanagers) cannot reach the portal's
own network: with an empty allow-list every loopback, private, link-local, unspecified or otherwise non-public
address is refused when an admin saves the URL (pages and API) and again when a worker connects, in every spelling
(IPv6, IPv4-mapped, decimal, octal, a host name resolving to loopback), and so is a redirect to such an address.

A real server on 127.0.0.1 (and ::1 where the machine has IPv6) records every request it gets, proving that a
refused URL is never fetched, and that the same server is reached once the allow-list names it.
"""

import json
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from django.test import override_settings
from django.urls import reverse

from apps.accounts.roles import Role
from apps.alerts import notifications
from apps.alerts.forms import ChannelForm
from apps.alerts.models import NotificationChannel
from apps.billing import services as billing
from apps.billing.forms import BillingSourceForm
from apps.billing.models import BillingImport, BillingSource
from apps.core import netguard
from apps.telemetry.forms import TelemetrySourceForm
from apps.telemetry.models import TelemetrySource
from apps.telemetry.prometheus import PrometheusClient, PrometheusError

pytestmark = pytest.mark.django_db

CSV = b"BilledCost,BillingCurrency\n1,USD\n"
PROMETHEUS_ANSWER = {"status": "success", "data": {"resultType": "matrix", "result": []}}


class Recorder:
    """A server on loopback that records every request; it answers CSV, a Prometheus matrix, or a redirect."""

    def __init__(self, host: str = "127.0.0.1", redirect_to: str | None = None) -> None:
        self.requests: list[tuple[str, str]] = []
        self.redirect_to = redirect_to
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                recorder.requests.append((self.command, self.path))
                if recorder.redirect_to:
                    self.send_response(307)  # 307 keeps the method: a POST is re-sent as a POST
                    self.send_header("Location", recorder.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if "query_range" in self.path:
                    body, kind = json.dumps(PROMETHEUS_ANSWER).encode(), "application/json"
                else:
                    body, kind = CSV, "text/csv"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # http.server's names

            def log_message(self, *args):
                pass

        server_class = ThreadingHTTPServer
        if ":" in host:

            class V6Server(ThreadingHTTPServer):
                address_family = socket.AF_INET6

            server_class = V6Server
        self.httpd = server_class((host, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def recorders():
    """The recording server on 127.0.0.1, and one on ::1 when the machine has IPv6 loopback."""
    v4 = Recorder()
    v6 = Recorder("::1") if _has_ipv6_loopback() else None
    yield SimpleNamespace(v4=v4, v6=v6, received=lambda: v4.requests + (v6.requests if v6 else []))
    v4.close()
    if v6:
        v6.close()


def refused_urls(rec) -> list[str]:
    """Every spelling of a disallowed target; those with a port reach the recording server if not refused."""
    port = rec.v4.port
    urls = [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.5/export.csv",
        "http://192.168.1.20/export.csv",
        "http://100.64.0.1/export.csv",
        f"http://127.0.0.1:{port}/export.csv",
        f"http://[::ffff:127.0.0.1]:{port}/export.csv",
        f"http://0.0.0.0:{port}/export.csv",
        f"http://localhost:{port}/export.csv",
        f"http://2130706433:{port}/export.csv",
        f"http://0177.0.0.1:{port}/export.csv",
        f"http://[::1]:{rec.v6.port if rec.v6 else port}/export.csv",
        "file:///etc/passwd",
        f"gopher://127.0.0.1:{port}/_GET%20/",
    ]
    return urls


WHY = {
    "169.254.169.254": "link-local address (the cloud metadata service)",
    "10.0.0.5": "private address",
    "192.168.1.20": "private address",
    "100.64.0.1": "shared (CGNAT",
    "://127.0.0.1:": "127.0.0.1 is a loopback address",
    "::ffff:127.0.0.1": "IPv4-mapped form of a loopback address",
    "0.0.0.0": "unspecified address",
    "localhost": "localhost resolves to 127.0.0.1, a loopback address",
    "2130706433": "2130706433 (127.0.0.1) is a loopback address",
    "0177.0.0.1": "0177.0.0.1 (127.0.0.1) is a loopback address",
    "[::1]": "::1 is a loopback address",
    "file://": "file:// is not allowed (only http and https)",
    "gopher://": "gopher:// is not allowed (only http and https)",
}


def why(url: str) -> str:
    return next(reason for key, reason in WHY.items() if key in url)


@pytest.fixture
def nothing_allowed():
    with override_settings(OUTBOUND_ALLOW=[]):
        yield


@pytest.fixture
def admin(role_client):
    return role_client(Role.ADMIN)


def _channel_data(url: str, **extra) -> dict:
    return {
        "name": "Hook",
        "kind": "webhook",
        "url": url,
        "secret_env_var": "OPSPORTAL_TEST_HOOK_SECRET",
        "timeout_seconds": 2,
        "max_attempts": 1,
        "backoff_seconds": 1,
        "enabled": "on",
        **extra,
    }


def _billing_data(url: str) -> dict:
    return {"name": "Exports", "format": "auto", "location": url, "pull_every_minutes": 60, "enabled": "on"}


def _prometheus_data(url: str) -> dict:
    fields = {
        "name": "Prom",
        "base_url": url,
        "step_seconds": 60,
        "pull_interval_seconds": 300,
        "backfill_hours": 1,
        "delay_seconds": 0,
        "timeout_seconds": 2,
        "max_retries": 0,
        "retry_backoff_seconds": 1,
        "enabled": "on",
    }
    return fields


# --- Saving a URL: forms, pages and the API ----------------------------------------------------------------


def test_every_disallowed_url_is_refused_by_the_forms(recorders, nothing_allowed):
    for url in refused_urls(recorders):
        form = BillingSourceForm(data=_billing_data(url))
        assert not form.is_valid(), url
        if url.startswith("http"):
            assert why(url) in " ".join(form.errors["location"]), (url, form.errors)
            assert "OPSPORTAL_OUTBOUND_ALLOW" in " ".join(form.errors["location"])

        form = TelemetrySourceForm(data=_prometheus_data(url))
        assert not form.is_valid(), url
        assert "base_url" in form.errors, (url, form.errors)

        form = ChannelForm(data=_channel_data(url))
        assert not form.is_valid(), url
        assert "url" in form.errors, (url, form.errors)
    assert recorders.received() == []


def test_the_refusal_names_the_address_its_kind_and_the_setting(nothing_allowed):
    form = TelemetrySourceForm(data=_prometheus_data("http://localhost:9090"))
    assert not form.is_valid()
    assert form.errors["base_url"] == [
        "refused: localhost resolves to 127.0.0.1, a loopback address; add localhost to OPSPORTAL_OUTBOUND_ALLOW "
        "to allow it"
    ]


def test_every_disallowed_url_is_refused_by_the_pages_and_the_api(recorders, nothing_allowed, admin):
    for url in refused_urls(recorders):
        response = admin.post(reverse("billing:source-create"), _billing_data(url))
        assert response.status_code == 200, url  # the form again, with the error
        if url.startswith("http"):
            assert why(url) in response.content.decode(), url
        response = admin.post(
            "/api/v1/billing/sources/", _billing_data(url) | {"enabled": True}, content_type="application/json"
        )
        assert response.status_code == 400 and "location" in response.json(), (url, response.content)
        if url.startswith("http"):
            assert why(url) in response.json()["location"][0], url

        response = admin.post(reverse("alerts:channel-create"), _channel_data(url))
        assert response.status_code in (200, 400) and response.context["form"].errors.get("url"), url
        response = admin.post(
            "/api/v1/alerts/channels/", _channel_data(url) | {"enabled": True}, content_type="application/json"
        )
        assert response.status_code == 400 and "url" in response.json(), (url, response.content)

    assert not BillingSource.objects.exists() and not NotificationChannel.objects.exists()
    assert recorders.received() == []


def test_a_public_or_not_yet_resolvable_url_is_accepted_when_saved(nothing_allowed, admin):
    # 192.0.2.0/24 is documentation space: refused. A name that does not resolve yet is accepted when saved and
    # checked again at every connection.
    assert "special-purpose" in netguard.url_problem("http://192.0.2.10/")
    assert netguard.url_problem("https://8.8.8.8/dns") is None
    assert netguard.url_problem("https://exports.example.com/focus.csv.gz") is None
    response = admin.post(reverse("billing:source-create"), _billing_data("https://exports.example.com/a.csv"))
    assert response.status_code == 302 and BillingSource.objects.count() == 1


# --- Connecting: the workers ----------------------------------------------------------------------------------


def _billing_fetch(url: str) -> str:
    source = BillingSource.objects.create(name=f"s{BillingSource.objects.count()}", location=url)
    with pytest.raises(billing.SourceUnavailable) as caught:
        billing.billing_source_pull(source=source)
    return str(caught.value)


def _prometheus_fetch(url: str) -> str:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    with pytest.raises(PrometheusError) as caught:
        PrometheusClient(url.rsplit("/", 1)[0], timeout=2).query_range("up", start=now, end=now, step_seconds=60)
    return str(caught.value)


def _webhook_post(url: str) -> str:
    channel = NotificationChannel(name="Hook", kind="webhook", url=url, timeout_seconds=2)
    result = notifications.post_json(channel=channel, url=url, payload={"alerts": []}, key="k1", attempt=1)
    assert not result.ok
    return result.error


def test_every_disallowed_url_is_refused_at_connection_time_and_nothing_is_fetched(recorders, nothing_allowed):
    for url in refused_urls(recorders):
        if url.startswith("http"):
            for fetch in (_billing_fetch, _prometheus_fetch, _webhook_post):
                error = fetch(url)
                assert "refused" in error and why(url) in error, (fetch.__name__, url, error)
        else:
            # Not an http(s) URL: a billing location like this is refused as a local path (not an absolute
            # one), never fetched, wherever the worker runs.
            assert f"{url!r} is not an absolute path" in _billing_fetch(url)
            assert "is not allowed (only http and https)" in _prometheus_fetch(url)
            assert "is not allowed (only http and https)" in _webhook_post(url)
    assert recorders.received() == []
    assert not BillingImport.objects.exists()


def test_the_check_runs_again_at_connection_time(recorders):
    url = f"http://127.0.0.1:{recorders.v4.port}/export.csv"
    form = BillingSourceForm(data=_billing_data(url))
    assert form.is_valid(), form.errors  # the test settings allow 127.0.0.1
    source = form.save()
    # The operator narrows the allow-list after the source was saved.
    with (
        override_settings(OUTBOUND_ALLOW=[]),
        pytest.raises(billing.SourceUnavailable, match=r"127\.0\.0\.1 is a loopback"),
    ):
        billing.billing_source_pull(source=source)
    assert recorders.received() == []


def test_a_redirect_from_an_allowed_server_to_a_disallowed_address_is_refused(recorders):
    target = f"http://127.0.0.1:{recorders.v4.port}/latest/meta-data/"
    redirector = Recorder(redirect_to=target)
    try:
        # The allow-list names the redirecting server by host name only: 127.0.0.1 itself stays refused.
        with override_settings(OUTBOUND_ALLOW=["localhost"]):
            url = f"http://localhost:{redirector.port}/export.csv"
            assert netguard.url_problem(url) is None
            for fetch in (_billing_fetch, _prometheus_fetch, _webhook_post):
                error = fetch(url)
                assert "refused: 127.0.0.1 is a loopback address" in error, (fetch.__name__, error)
            assert len(redirector.requests) == 3  # each worker reached the allowed server once ...
        assert recorders.received() == []  # ... and never followed it to the refused one
    finally:
        redirector.close()


def test_a_redirect_to_another_scheme_is_refused(recorders):
    redirector = Recorder(redirect_to="file:///etc/passwd")
    try:
        error = _billing_fetch(f"http://127.0.0.1:{redirector.port}/export.csv")
        assert "file:// is not allowed (only http and https)" in error
    finally:
        redirector.close()


def test_with_the_allow_list_naming_127_0_0_1_the_same_server_is_reached(recorders, django_capture_on_commit_callbacks):
    url = f"http://127.0.0.1:{recorders.v4.port}/export.csv"
    with override_settings(OUTBOUND_ALLOW=["127.0.0.1"]):
        assert BillingSourceForm(data=_billing_data(url)).is_valid()
        assert TelemetrySourceForm(data=_prometheus_data(url.rsplit("/", 1)[0])).is_valid()
        assert ChannelForm(data=_channel_data(url)).is_valid()

        source = BillingSource.objects.create(name="Exports", location=url)
        with django_capture_on_commit_callbacks(execute=False):
            queued = billing.billing_source_pull(source=source)
        assert [q.filename for q in queued] == ["export.csv"]

        now = datetime(2026, 11, 27, tzinfo=UTC)
        result = PrometheusClient(url.rsplit("/", 1)[0], timeout=2).query_range(
            "up", start=now, end=now, step_seconds=60
        )
        assert result.series == []

        channel = NotificationChannel(name="Hook", kind="webhook", url=url, timeout_seconds=2)
        sent = notifications.post_json(channel=channel, url=url, payload={"alerts": []}, key="k1", attempt=1)
        assert sent.ok, sent.error

    assert recorders.v4.requests == [("GET", "/export.csv"), ("POST", "/api/v1/query_range"), ("POST", "/export.csv")]


def test_a_cidr_in_the_allow_list_covers_its_addresses(recorders):
    url = f"http://127.0.0.1:{recorders.v4.port}/export.csv"
    with override_settings(OUTBOUND_ALLOW=["127.0.0.0/8"]):
        assert netguard.url_problem(url) is None
        assert netguard.url_problem(f"http://2130706433:{recorders.v4.port}/") is None
    with override_settings(OUTBOUND_ALLOW=["10.0.0.0/8"]):
        assert "loopback" in netguard.url_problem(url)
        assert netguard.url_problem("http://10.1.2.3/") is None


def test_prometheus_sources_saved_in_the_admin_site_are_checked(nothing_allowed, client, admin_user):
    client.force_login(admin_user)
    if not admin_user.is_staff:
        pytest.skip("the portal admin is not staff of the admin site")
    data = _prometheus_data("http://169.254.169.254") | {
        "mappings-TOTAL_FORMS": "0",
        "mappings-INITIAL_FORMS": "0",
        "mappings-MIN_NUM_FORMS": "0",
        "mappings-MAX_NUM_FORMS": "1000",
    }
    response = client.post(reverse("admin:telemetry_telemetrysource_add"), data)
    assert response.status_code == 200
    assert "the cloud metadata service" in response.content.decode()
    assert not TelemetrySource.objects.exists()


def test_https_connects_to_the_checked_address_and_still_verifies_the_certificate_name(tmp_path):
    """The guarded connection dials the checked IP itself; TLS still checks the certificate against the host name."""
    import shutil
    import ssl
    import subprocess

    from tests.conftest import require_server

    if shutil.which("openssl") is None:
        require_server("openssl", "needed to make a certificate for the TLS server; apt-get install openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subject = ["-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), *subject],
        check=True,
        capture_output=True,
    )
    server = Recorder()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    try:
        http = netguard.session()
        response = http.get(f"https://localhost:{server.port}/export.csv", verify=str(cert), timeout=5)
        assert response.status_code == 200 and response.content == CSV
        with pytest.raises(Exception, match="certificate"):  # the certificate names localhost, not 127.0.0.1
            http.get(f"https://127.0.0.1:{server.port}/export.csv", verify=str(cert), timeout=5)
        with override_settings(OUTBOUND_ALLOW=[]), pytest.raises(netguard.OutboundRefused, match="loopback"):
            http.get(f"https://localhost:{server.port}/export.csv", verify=str(cert), timeout=5)
        assert server.requests == [("GET", "/export.csv")]
    finally:
        server.close()
