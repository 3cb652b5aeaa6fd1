#!/usr/bin/env python
"""Load test: users of every role browse the portal on gunicorn while Celery workers import billing and evaluate alerts.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
        python bench/load.py --users 50 --spawn-rate 2 --duration 180s

Give it a Redis database of its own: the run empties the queues it uses before starting its workers.

Setup: creates (or reuses) the PostgreSQL database ``--database`` on the server DATABASE_URL names, migrates
it and loads the demo once (``--fresh`` drops and rebuilds it), then creates ``--accounts-per-role`` users of
each role (Executive, Product manager, Admin) with a known password and a fresh read-scope API token each.
Static files are collected (hashed and compressed, as in production) into var/load-<database>/static/ and
reused while the sources are unchanged: compressing them takes minutes on a busy machine.

Run: starts gunicorn in production mode (DJANGO_DEBUG=0, WhiteNoise serving the collected static files; plain
HTTP on loopback, so no HTTPS redirect and no secure-only cookies) with a throw-away var folder, a Celery
worker for the ``billing`` queue and one for ``alerts``/``notifications``/``default``, and a background
driver that keeps them busy: it drops a generated FOCUS file (the shared FOCUS 1.0 sample's rows, September
2024) into a billing source's folder and queues the source's pull (which queues the import) as soon as the
previous import has finished, and queues an alert evaluation every few seconds (the evaluator runs each minute
slot once, as beat would). Then locust users (run in this process, as a library) sign in through the login
form and browse with think time:

- Executive: the overview, its htmx tile partial with filters, unit cost, cost explorer, capacity, adoption,
  the KPI API with a token;
- Product manager: adoption pages of a product, functionality and delivery activity, the adoption API;
- Admin: settings, alerts and their rules, silences, channels and audit trail, billing sources and rules.

Every request must answer 200 (a sign-in 302 to the overview) with the page's own content; anything else is
an error. Prints a table per endpoint (with a line for the requests after the last user signed in, without
the sign-in burst), the background work done, and as its last line the request rate and latency of the
pages, API calls and sign-ins (static files, fetched once per user as a browser caches them, are in the
table only) and the number of errors of every kind of request:

    rps=... p50_ms=... p95_ms=... p99_ms=... errors=... users=... duration_s=...

gunicorn, worker and driver logs are kept under var/load-<database>/logs/. Every process started is
stopped on exit, including on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SAMPLE = ROOT.parent / "shared" / "data" / "focus-1.0_sample_1000.csv"

PASSWORD = "load-Meridian-2026-bench"  # every load user's password: known, so sign-in never fails
ACCOUNT_PREFIX = {"executive": "load-exec", "product_manager": "load-pm", "admin": "load-admin"}
TOKEN_NAME = "bench load"
BENCH_SOURCE = "bench-load-focus"
BACKGROUND_QUEUES = {"billing": "billing", "alerts": "alerts,notifications,default"}


# --- Options ---------------------------------------------------------------------------------------------------


def duration_seconds(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 60s, 2m or 90")
    return float(match[1]) * {"s": 1, "m": 60, "h": 3600, None: 1}[match[2]]


def think_range(text: str) -> tuple[float, float]:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a think time such as 2 or 1-4 (seconds)")
    low = float(match[1])
    high = float(match[2]) if match[2] else low
    if high < low:
        raise argparse.ArgumentTypeError(f"think time {text!r}: the upper bound is below the lower one")
    return low, high


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50, help="concurrent simulated users (default 50)")
    parser.add_argument("--spawn-rate", type=float, default=2, help="users started per second (default 2)")
    parser.add_argument("--duration", type=duration_seconds, default=180.0, help="e.g. 60s, 3m (default 180s)")
    parser.add_argument("--think", type=think_range, default=(1.0, 4.0), help="think time, seconds (default 1-4)")
    parser.add_argument(
        "--gunicorn-workers", type=int, default=None, help="gunicorn worker processes (default 2 x CPU cores + 1)"
    )
    parser.add_argument("--port", type=int, default=8793)
    parser.add_argument("--database", default="opsportal_load", help="database name on DATABASE_URL's server")
    parser.add_argument("--fresh", action="store_true", help="drop the database and rebuild it with the demo")
    parser.add_argument(
        "--accounts-per-role", type=int, default=None, help="users created per role (default: enough for --users)"
    )
    parser.add_argument("--no-background", action="store_true", help="no Celery workers, no billing or alert work")
    parser.add_argument("--billing-rows", type=int, default=5000, help="rows of each generated FOCUS file")
    parser.add_argument("--alerts-every", type=float, default=10.0, help="seconds between queued alert evaluations")
    # Internal: this same file is the setup step and the background driver, run as child processes so the
    # locust process (gevent) never loads Django.
    parser.add_argument("--step", choices=["setup", "driver"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--drop-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.users < 1:
        parser.error("--users must be at least 1")
    if args.spawn_rate <= 0:
        parser.error("--spawn-rate must be positive")
    if args.accounts_per_role is not None and args.accounts_per_role < 1:
        parser.error("--accounts-per-role must be at least 1")
    if args.gunicorn_workers is None:
        args.gunicorn_workers = 2 * (os.cpu_count() or 1) + 1
    if args.accounts_per_role is None:
        args.accounts_per_role = math.ceil(args.users / len(ACCOUNT_PREFIX))
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.database):
        parser.error(f"--database {args.database!r}: use letters, digits and underscores")
    return args


def database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{name}"))


def check_servers(parser_name: str = "bench/load.py") -> tuple[str, str]:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit(
            f"{parser_name} measures the production setup and refuses to run on "
            f"{'SQLite (the default)' if not url or url.startswith('sqlite') else repr(url)}: set DATABASE_URL to a "
            "PostgreSQL server, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres (the database "
            "itself is --database, created if missing)."
        )
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith(("redis://", "rediss://")):
        sys.exit(
            f"{parser_name} needs Redis as the Celery broker, not {broker or 'the filesystem broker (the default)'}: "
            "set CELERY_BROKER_URL, e.g. CELERY_BROKER_URL=redis://127.0.0.1:6379/0"
        )
    return url, broker


# --- Database ---------------------------------------------------------------------------------------------------


def ensure_database(url: str, name: str, *, fresh: bool) -> bool:
    """Create the database if it is missing (dropping it first with ``fresh``); True when it was created."""
    import psycopg2
    from psycopg2 import sql

    try:
        admin = psycopg2.connect(database_url(url, "postgres"))
    except psycopg2.OperationalError as exc:
        sys.exit(f"cannot connect to the PostgreSQL server of DATABASE_URL: {str(exc).strip()}")
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            if fresh:
                cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone():
                return False
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    finally:
        admin.close()


# --- Child processes --------------------------------------------------------------------------------------------


class Processes:
    """Every process this run started, each leading its own process group so its children stop with it."""

    def __init__(self) -> None:
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, command: list[str], env: dict, log: Path) -> subprocess.Popen:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.running.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 20) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        else:
            # The leader exited: make sure nothing it started is left behind.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for _, proc in reversed(self.running):
            self.stop(proc)
        self.running.clear()


def run_child(command: list[str], env: dict, what: str) -> str:
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{what} failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"gunicorn exited (code {proc.returncode}) before answering; its log {log}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:300]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    sys.exit(f"{url} did not answer 200 within {timeout:.0f}s (last: {last}); gunicorn log {log}:\n{tail(log)}")


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


ACCESS_LINE = re.compile(r'"[A-Z]+ (\S+) [^"]*" \d{3} \S+ (\d+)ms$')


def server_times(access_log: Path) -> list[float]:
    """Milliseconds gunicorn spent on each request but static files, sorted, from its access log."""
    times = []
    try:
        lines = access_log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        match = ACCESS_LINE.search(line)
        if match and not match[1].startswith("/static/") and not match[1].startswith("/healthz"):
            times.append(float(match[2]))
    return sorted(times)


def portal_env(*, db_url: str, var_dir: Path, secret: str, port: int) -> dict:
    """Production settings, for plain HTTP on loopback."""
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "DJANGO_SETTINGS_MODULE": "opsportal.settings.base",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secret,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "0",  # plain HTTP on loopback
        "DJANGO_SESSION_COOKIE_SECURE": "0",
        "DJANGO_CSRF_COOKIE_SECURE": "0",
        "DJANGO_SECURE_HSTS_SECONDS": "0",
        "DJANGO_LOG_LEVEL": "WARNING",
        "OPSPORTAL_VAR_DIR": str(var_dir),
        "OPSPORTAL_BASE_URL": f"http://127.0.0.1:{port}",
        "EMAIL_URL": "dummymail://",  # alert notifications are produced and "sent" without a mail server
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("OPSPORTAL_UPLOAD_DIR", None)
    env.pop("OPSPORTAL_BROKER_DIR", None)
    return env


# --- Main: setup, servers, locust, report -----------------------------------------------------------------------


def percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) of an ascending list."""
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(requests: list, elapsed: float) -> dict:
    times = sorted(r.ms for r in requests)
    return {
        "requests": len(times),
        "rps": len(times) / elapsed if elapsed > 0 else 0.0,
        "p50": percentile(times, 0.5),
        "p95": percentile(times, 0.95),
        "p99": percentile(times, 0.99),
        "max": times[-1] if times else float("nan"),
        "errors": sum(1 for r in requests if r.error),
    }


def report(result) -> dict:
    """Print the table per endpoint and the errors; return the figures of the last line.

    Latency and rate are of the pages, API calls and sign-ins: static files (fetched once per user, as a
    browser's cache would) are listed but left out. Errors are every failed request, static files included,
    plus exceptions raised by the users' code outside a request.
    """
    by_name: dict[str, list] = {}
    for request in result.requests:
        by_name.setdefault(f"{request.method} {request.name}", []).append(request)
    header = f"{'endpoint':<58} {'reqs':>6} {'errs':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"

    def row(label: str, figures: dict) -> str:
        return (
            f"{label[:58]:<58} {figures['requests']:>6} {figures['errors']:>5} {figures['p50']:>8.0f} "
            f"{figures['p95']:>8.0f} {figures['p99']:>8.0f} {figures['max']:>8.0f}"
        )

    print(header)
    print("-" * len(header))
    for name in sorted(by_name):
        print(row(name, summary(by_name[name], result.elapsed)))
    print("-" * len(header))
    dynamic = [r for r in result.requests if not r.name.startswith("/static/")]
    print(row("every request", summary(result.requests, result.elapsed)))
    headline = summary(dynamic, result.elapsed)
    print(row("pages, API and sign-ins (the last line)", headline))
    steady = [r for r in dynamic if result.signed_in_at is not None and r.at >= result.signed_in_at]
    if steady:
        figures = summary(steady, result.elapsed - result.signed_in_at)
        print(row(f"  after the last sign-in ({result.signed_in_at:.0f}s in), {figures['rps']:.1f} rps", figures))
    errors: dict[tuple[str, str, str], int] = {}
    for request in result.requests:
        if request.error:
            key = (request.method, request.name, request.error)
            errors[key] = errors.get(key, 0) + 1
    if errors or result.problems:
        print("\nerrors:")
    for (method, name, error), count in sorted(errors.items(), key=lambda item: -item[1]):
        print(f"  {count:>5} x {method} {name}: {error}")
    for problem in result.problems:
        print(f"  exception in a user's task: {problem}")
    headline["errors"] = sum(errors.values()) + len(result.problems)
    return headline


def main(args: argparse.Namespace) -> None:
    base_url, _ = check_servers()
    with socket.socket() as probe:  # another server on the port would answer the health check instead
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does: TIME_WAIT is no obstacle
        try:
            probe.bind(("127.0.0.1", args.port))
        except OSError as exc:
            sys.exit(f"port {args.port} on 127.0.0.1 is taken ({exc.strerror}): choose another with --port")
    db_url = database_url(base_url, args.database)
    created = ensure_database(base_url, args.database, fresh=args.fresh)
    keep_dir = ROOT / "var" / f"load-{args.database}"  # the demo's files, reused with the database
    if created and keep_dir.exists():
        shutil.rmtree(keep_dir / "demo", ignore_errors=True)
    logs = keep_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("*.log"):
        old.unlink()
    run_dir = Path(tempfile.mkdtemp(prefix="opsportal-load-"))
    secret = secrets.token_urlsafe(50)
    python = sys.executable
    processes = Processes()

    def on_term(signum, frame):  # stop children on `kill` as on Ctrl-C
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        started = time.monotonic()
        setup_env = portal_env(db_url=db_url, var_dir=keep_dir, secret=secret, port=args.port)
        # The demo's (disabled) on-call webhook points at this machine, which production settings refuse.
        setup_env.setdefault("OPSPORTAL_OUTBOUND_ALLOW", "127.0.0.1,localhost")
        setup_file = run_dir / "setup.json"
        drop_dir = run_dir / "billing-drop"
        drop_dir.mkdir()
        print(f"database {args.database} ({'created' if created else 'reused'}); migrating and checking the demo...")
        out = run_child(
            [
                python,
                __file__,
                "--step",
                "setup",
                "--out",
                str(setup_file),
                "--drop-dir",
                str(drop_dir),
                "--accounts-per-role",
                str(args.accounts_per_role),
                "--database",
                args.database,
                *(["--fresh"] if args.fresh else []),
            ],
            setup_env,
            "setup",
        )
        print(out.rstrip())
        setup = json.loads(setup_file.read_text())

        # The servers get a throw-away var folder (uploads, the billing drop folder) whose STATIC_ROOT is the
        # static files collected by the setup step.
        (run_dir / "static").symlink_to(keep_dir / "static", target_is_directory=True)
        env = portal_env(db_url=db_url, var_dir=run_dir, secret=secret, port=args.port)

        celery = str(BIN / "celery")
        if not args.no_background:
            queues = ",".join(BACKGROUND_QUEUES.values())
            run_child([celery, "-A", "opsportal", "purge", "-f", "-Q", queues], env, "purging the bench queues")
            for name, queue_list in BACKGROUND_QUEUES.items():
                processes.start(
                    f"worker-{name}",
                    [
                        celery,
                        "-A",
                        "opsportal",
                        "worker",
                        "-Q",
                        queue_list,
                        "-n",
                        f"load-{name}-{os.getpid()}@%h",
                        "--concurrency",
                        "1",
                        "--loglevel",
                        "INFO",
                        "--without-gossip",
                        "--without-mingle",
                    ],
                    env,
                    logs / f"worker-{name}.log",
                )
        print(f"setup done in {time.monotonic() - started:.0f}s")
        gunicorn_log = logs / "gunicorn.log"
        server = processes.start(
            "gunicorn",
            [
                str(BIN / "gunicorn"),
                "opsportal.wsgi",
                "--bind",
                f"127.0.0.1:{args.port}",
                "--workers",
                str(args.gunicorn_workers),
                "--timeout",
                "60",
                "--graceful-timeout",
                "10",
                "--access-logfile",
                str(logs / "access.log"),
                "--access-logformat",
                '%(t)s "%(r)s" %(s)s %(b)s %(M)sms',
                "--log-level",
                "warning",
            ],
            env,
            gunicorn_log,
        )
        host = f"http://127.0.0.1:{args.port}"
        wait_until_up(f"{host}/healthz", server, gunicorn_log)
        driver = None
        summary_file = run_dir / "background.json"
        if not args.no_background:
            driver = processes.start(
                "driver",
                [
                    python,
                    __file__,
                    "--step",
                    "driver",
                    "--out",
                    str(summary_file),
                    "--drop-dir",
                    str(drop_dir),
                    "--billing-rows",
                    str(args.billing_rows),
                    "--alerts-every",
                    str(args.alerts_every),
                    "--database",
                    args.database,
                ],
                env,
                logs / "driver.log",
            )
        print(
            f"gunicorn: {args.gunicorn_workers} workers at {host}; "
            + (
                "no background work"
                if args.no_background
                else "Celery workers: " + "; ".join(BACKGROUND_QUEUES.values())
            )
        )
        print(
            f"locust: {args.users} users ({args.accounts_per_role} accounts per role), spawn rate {args.spawn_rate}/s, "
            f"think {args.think[0]:g}-{args.think[1]:g}s, for {args.duration:.0f}s"
        )

        import load_users  # imports locust, which patches the standard library for gevent: only now

        result = load_users.run(
            host=host,
            setup=setup,
            users=args.users,
            spawn_rate=args.spawn_rate,
            duration=args.duration,
            think=args.think,
        )
        load_1, load_5, _ = os.getloadavg()
        died = [(name, proc) for name, proc in processes.running if proc.poll() is not None]
        background = None
        if driver is not None:
            processes.stop(driver)
            if summary_file.exists():
                background = json.loads(summary_file.read_text())
        print()
        figures = report(result)
        if args.no_background:
            print("\nbackground: none (--no-background)")
        elif background is not None:
            b = background
            took = percentile(b["import_seconds"], 0.5)
            print(
                f"\nbackground: {b['imports_succeeded']} billing imports succeeded ({b['rows_imported']:,} rows; "
                f"median {took:.1f}s each), {b['imports_failed']} failed, {b['imports_unfinished']} unfinished; "
                f"{b['evaluations_queued']} alert evaluations queued, {b['evaluations_run']} minute slots evaluated"
            )
            for problem in background.get("problems", []):
                print(f"  background problem: {problem}")
        else:
            print(f"\nbackground: the driver left no summary; see {logs / 'driver.log'}")
        for name, proc in died:
            print(f"{name} exited during the run (code {proc.returncode}); see its log in {logs}")
        served = server_times(logs / "access.log")
        if served:
            print(
                f"time inside gunicorn (access log; pages, API and sign-ins): p50 {percentile(served, 0.5):.0f} ms, "
                f"p95 {percentile(served, 0.95):.0f} ms, p99 {percentile(served, 0.99):.0f} ms (the rest of the "
                "latency above is queueing for a free worker, and the client's own delays)"
            )
        server_log = gunicorn_log.read_text(errors="replace").splitlines() if gunicorn_log.exists() else []
        tracebacks = [i for i, line in enumerate(server_log) if line.startswith("Traceback")]
        print(f"gunicorn log: {gunicorn_log} ({len(tracebacks)} tracebacks); access log: {logs / 'access.log'}")
        if tracebacks:  # the first one, with the log line before it (the request that failed)
            first = tracebacks[0]
            print("\n".join(server_log[max(0, first - 2) : first + 40]))
        print(f"load average {load_1:.2f} (1 min), {load_5:.2f} (5 min) on {os.cpu_count()} CPUs")
        print(
            f"rps={figures['rps']:.1f} p50_ms={figures['p50']:.0f} p95_ms={figures['p95']:.0f} "
            f"p99_ms={figures['p99']:.0f} errors={figures['errors']} users={args.users} duration_s={result.elapsed:.0f}"
        )
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the clean-up
        processes.stop_all()
        shutil.rmtree(run_dir, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)


# --- Step "setup" (child process, Django) ----------------------------------------------------------------------


def _django() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def step_setup(args: argparse.Namespace) -> None:
    _django()
    from datetime import timedelta

    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from apps.accounts.models import ApiToken, User
    from apps.accounts.roles import Role
    from apps.accounts.services import api_token_create, api_token_revoke
    from apps.alerts.models import AlertRule
    from apps.billing.models import BillingSource, CostRollup
    from apps.catalog.models import CapacityPool, Environment, Location, Product, Service, Team

    started = time.monotonic()
    call_command("migrate", "--noinput", verbosity=0)
    print(f"migrate: {time.monotonic() - started:.0f}s")
    loaded = (
        User.objects.filter(username="cfo").exists()
        and CostRollup.objects.exists()
        and AlertRule.objects.exists()
        and Product.objects.exists()
    )
    if loaded:
        print("demo data: already loaded, reused (--fresh rebuilds it)")
    else:
        started = time.monotonic()
        call_command("load_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
        print(f"demo data: loaded in {time.monotonic() - started:.0f}s")

    started = time.monotonic()
    products = list(Product.objects.order_by("name").values_list("slug", flat=True))
    accounts = []
    created = 0
    for role, prefix in ACCOUNT_PREFIX.items():
        for number in range(1, args.accounts_per_role + 1):
            username = f"{prefix}-{number:03d}"
            user = User.objects.filter(username=username).first()
            if user is None:
                # As an admin adds a person: a user with a role and a password (hashed with the real hasher).
                user = User.objects.create_user(
                    username=username,
                    password=PASSWORD,
                    email=f"{username}@meridian-markets.example",
                    role=Role(role),
                    first_name="Load",
                    last_name=f"{role.replace('_', ' ').title()} {number}",
                )
                created += 1
            elif user.role != role or not user.is_active:
                user.role, user.is_active = role, True
                user.save()
            for old in ApiToken.objects.active().filter(user=user, name=TOKEN_NAME):
                api_token_revoke(token=old, actor=user)
            _, key = api_token_create(user=user, name=TOKEN_NAME, scope=ApiToken.Scope.READ)
            accounts.append(
                {
                    "role": role,
                    "username": username,
                    "password": PASSWORD,
                    "token": key,
                    "product": products[(number - 1) % len(products)] if products else "",
                }
            )
    print(
        f"users: {created} created, {len(accounts) - created} reused "
        f"({args.accounts_per_role} per role, each with a new read-scope API token): {time.monotonic() - started:.0f}s"
    )

    started = time.monotonic()
    if collect_static(fresh=args.fresh):
        print(f"collectstatic into {settings.STATIC_ROOT}: {time.monotonic() - started:.0f}s")
    else:
        print(f"static files: {settings.STATIC_ROOT} is up to date with the sources, reused")

    source, _ = BillingSource.objects.update_or_create(
        name=BENCH_SOURCE,
        defaults={
            "location": args.drop_dir,
            "format": BillingSource.Format.AUTO,
            # Pulled by the load driver only: a scheduled pull would find the folder gone after the run.
            "enabled": False,
        },
    )
    today = timezone.localdate()
    month = today.replace(day=1)
    previous = (month - timedelta(days=1)).replace(day=1)
    setup = {
        "accounts": accounts,
        "periods": [month.strftime("%Y-%m"), previous.strftime("%Y-%m"), f"{today.year}-Q{(today.month - 1) // 3 + 1}"],
        "products": products,
        "services": list(Service.objects.order_by("slug").values_list("slug", flat=True)),
        "teams": list(Team.objects.order_by("slug").values_list("slug", flat=True)),
        "environments": list(Environment.objects.order_by("slug").values_list("slug", flat=True)),
        "regions": list(
            Location.objects.filter(kind=Location.Kind.REGION).order_by("code").values_list("code", flat=True)
        ),
        "pools": list(CapacityPool.objects.order_by("slug").values_list("slug", flat=True)),
        "billing_sources": list(BillingSource.objects.order_by("pk").values_list("pk", flat=True)),
        "alert_rules": list(AlertRule.objects.order_by("pk").values_list("pk", flat=True)),
        "bench_source": source.pk,
    }
    Path(args.out).write_text(json.dumps(setup))


def collect_static(*, fresh: bool) -> bool:
    """Run collectstatic (hashed names, compressed copies) unless the collected files match the sources.

    Compressing every file (gzip and Brotli) takes minutes on a busy machine, so the result is kept beside
    the database and reused until a static file, or the installed packages' files, change.
    """
    import hashlib

    from django.conf import settings
    from django.contrib.staticfiles.finders import get_finders
    from django.core.management import call_command

    entries = []
    for finder in get_finders():
        for path, storage in finder.list(["CVS", ".*", "*~"]):
            stat = os.stat(storage.path(path))
            entries.append(f"{getattr(storage, 'prefix', '') or ''}/{path}\0{stat.st_size}\0{stat.st_mtime_ns}")
    fingerprint = hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()
    root = Path(settings.STATIC_ROOT)
    stamp = root.with_name("static.fingerprint")
    if not fresh and (root / "staticfiles.json").exists() and stamp.exists() and stamp.read_text() == fingerprint:
        return False
    stamp.unlink(missing_ok=True)
    call_command("collectstatic", "--noinput", "--clear", verbosity=0)
    stamp.write_text(fingerprint)
    return True


# --- Step "driver" (child process, Django): keeps the workers busy -------------------------------------------


def write_focus_file(folder: Path, rows: int, iteration: int) -> Path:
    """The shared FOCUS sample's rows, repeated with resource ids unique to this iteration (so the file changes)."""
    import csv

    with open(SAMPLE, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        sample = list(reader)
    resource = header.index("ResourceId")
    partial = folder / ".bench-load.csv.part"  # hidden: a pull skips it until it is complete
    with open(partial, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for i in range(rows):
            row = list(sample[i % len(sample)])
            if row[resource] not in ("", "NULL"):
                row[resource] = f"{row[resource]}-load{iteration}-{i // len(sample)}"
            writer.writerow(row)
    target = folder / "bench-load.csv"
    partial.replace(target)
    return target


def step_driver(args: argparse.Namespace) -> None:
    _django()
    from django.db import close_old_connections
    from django.utils import timezone

    from apps.alerts.models import EvaluatorState
    from apps.alerts.tasks import evaluate_rules_task
    from apps.billing.models import BillingImport, BillingSource
    from apps.billing.tasks import billing_pull_source_task

    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    source = BillingSource.objects.get(name=BENCH_SOURCE)
    since = timezone.now()
    folder = Path(args.drop_dir)
    iteration = 0
    evaluations_queued = 0
    slots: set = set()
    last_alerts = 0.0
    pulled_at = 0.0
    problems: list[str] = []
    while not stopping:
        close_old_connections()
        busy = BillingImport.objects.filter(
            source=source, status__in=[BillingImport.Status.QUEUED, BillingImport.Status.RUNNING]
        ).exists()
        # A pull that found the file queues its import within a second or two; wait for that before the next file.
        if not busy and time.monotonic() - pulled_at > 3:
            iteration += 1
            write_focus_file(folder, args.billing_rows, iteration)
            billing_pull_source_task.delay(source.pk)
            pulled_at = time.monotonic()
            print(f"billing: file {iteration} ({args.billing_rows} rows) dropped, pull queued", flush=True)
        if time.monotonic() - last_alerts >= args.alerts_every:
            evaluate_rules_task.delay()
            evaluations_queued += 1
            last_alerts = time.monotonic()
        state = EvaluatorState.objects.filter(pk=1).values_list("last_slot", flat=True).first()
        if state and state >= since.replace(second=0, microsecond=0):
            slots.add(state)
        time.sleep(1)

    close_old_connections()
    imports = BillingImport.objects.filter(source=source, created_at__gte=since)
    for failed in imports.filter(status=BillingImport.Status.FAILED):
        problems.append(f"import {failed.pk} of {failed.filename} failed: {failed.error[:300]}")
    state = EvaluatorState.objects.filter(pk=1).values_list("last_slot", flat=True).first()
    if state and state >= since.replace(second=0, microsecond=0):
        slots.add(state)
    summary = {
        "files": iteration,
        "imports_succeeded": imports.filter(status=BillingImport.Status.SUCCEEDED).count(),
        "imports_failed": imports.filter(status=BillingImport.Status.FAILED).count(),
        "imports_unfinished": imports.filter(
            status__in=[BillingImport.Status.QUEUED, BillingImport.Status.RUNNING]
        ).count(),
        "rows_imported": sum(imports.values_list("rows_imported", flat=True)),
        "import_seconds": sorted(
            round((i.finished_at - i.started_at).total_seconds(), 1)
            for i in imports.filter(status=BillingImport.Status.SUCCEEDED).only("started_at", "finished_at")
            if i.started_at and i.finished_at
        ),
        "evaluations_queued": evaluations_queued,
        "evaluations_run": len(slots),
        "problems": problems,
    }
    Path(args.out).write_text(json.dumps(summary))
    print(f"driver stopped: {summary}", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    arguments = parse_args()
    if arguments.step == "setup":
        step_setup(arguments)
    elif arguments.step == "driver":
        step_driver(arguments)
    else:
        try:
            main(arguments)
        except KeyboardInterrupt:
            sys.exit("interrupted: every process this run started has been stopped")
