"""Real local servers for the pull tests: a metrics exporter, a fake API that answers what it is told, and
Debian's Prometheus started on loopback with a temporary config (MONITORING.md section 6)."""

import json
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from tests.conftest import require_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    def __init__(self, handler_factory) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_factory(self))
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Exporter(_Server):
    """Serves /metrics in the Prometheus text format; ``lines`` can be changed while it runs."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

        def factory(server):
            class Handler(BaseHTTPRequestHandler):
                def do_GET(self):
                    body = ("\n".join(server.lines) + "\n").encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *args):
                    pass

            return Handler

        super().__init__(factory)


class FakeApi(_Server):
    """Answers every request with ``status`` and ``body`` (JSON), and records what it was sent."""

    def __init__(self, status: int = 500, body: dict | str | None = None) -> None:
        self.status, self.body = status, body
        self.requests: list[dict] = []

        def factory(server):
            class Handler(BaseHTTPRequestHandler):
                def _answer(self):
                    length = int(self.headers.get("Content-Length") or 0)
                    server.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length).decode()}
                    )
                    payload = server.body if isinstance(server.body, str) else json.dumps(server.body or {})
                    data = payload.encode()
                    self.send_response(server.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

                do_GET = do_POST = _answer

                def log_message(self, *args):
                    pass

            return Handler

        super().__init__(factory)


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@contextmanager
def running_prometheus(tmp_dir: Path, exporter_port: int):
    """Start Prometheus on a free loopback port scraping the exporter every second; stop it by its own PID."""
    binary = shutil.which("prometheus")
    if binary is None:
        require_server("prometheus", "the prometheus binary is missing; install Debian's `prometheus` package")
    port = free_port()
    config = tmp_dir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - {{job_name: opsportal_test, static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]}}\n"
    )
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: requests.get(f"{url}/-/ready", timeout=1).status_code == 200, proc, "ready", 20)
        _wait(lambda: _query(url, 'up{job="opsportal_test"} == 1'), proc, "scraping the exporter", 30)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _query(url: str, expr: str) -> list:
    body = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=2).json()
    return body["data"]["result"]


def wait_for_value(url: str, expr: str, timeout: float = 15) -> None:
    """Wait until an instant query returns a non-empty result (e.g. ``metric == 4.25``)."""
    _wait(lambda: _query(url, expr), None, f"{expr} to hold", timeout)


def _wait(check, proc, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"prometheus exited before {what}: {proc.stderr.read()}")
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"prometheus was not {what} within {timeout} s")
