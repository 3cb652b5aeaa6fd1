"""Event ingestion throughput over HTTP: batches posted to a running portal from other processes.

Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/opsportal_bench_events \\
       python bench/events.py --events 200000 [--clients 4] [--workers 3] [--batch 1000] [--retries 0.02]

Migrates the database, creates a bench product, stores and a write token with the ORM, starts gunicorn
(from the virtualenv) on 127.0.0.1, and posts ``--events`` unique events in batches of ``--batch``
from ``--clients`` client processes, re-sending a share of the batches as a client retrying would.
Then it checks that the stored count grew by exactly the unique events sent, times a rollup refresh
of the days touched, stops gunicorn and prints events per second (unique events stored / wall time
from the first request to the last response) as its last line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings.base")
os.environ.setdefault("DJANGO_DEBUG", "1")  # this process only sets up and counts; gunicorn runs with DEBUG off

PRODUCT = "bench-ingest"
USAGE = ["bench_viewed", "bench_applied"]
STANDARD = ["trial_requested", "trial_started", "demo_attended", "training_completed"]
ROLES = ["store_colleague", "store_manager", "pricing_analyst"]

_PAYLOADS: list[bytes] = []  # filled before the clients fork, so they share it without copying


def _setup(stores_wanted: int) -> tuple[str, list[str]]:
    import django

    django.setup()
    from apps.accounts.models import ApiToken, User
    from apps.accounts.roles import Role
    from apps.accounts.services import api_token_create
    from apps.catalog.models import Location, Product

    region, _ = Location.objects.get_or_create(
        code="region-bench", defaults={"name": "Bench region", "kind": Location.Kind.REGION}
    )
    stores = list(Location.objects.filter(kind=Location.Kind.STORE).values_list("code", flat=True)[:stores_wanted])
    if len(stores) < stores_wanted:
        for i in range(len(stores), stores_wanted):
            Location.objects.get_or_create(
                code=f"bench-store-{i:04d}",
                defaults={"name": f"Bench store {i}", "kind": Location.Kind.STORE, "parent": region},
            )
        stores = list(Location.objects.filter(kind=Location.Kind.STORE).values_list("code", flat=True)[:stores_wanted])
    user, _ = User.objects.get_or_create(username="bench-ingest", defaults={"role": Role.ADMIN})
    Product.objects.update_or_create(
        slug=PRODUCT, defaults={"name": "Bench ingestion", "owner": user, "usage_event_names": USAGE}
    )
    _, key = api_token_create(user=user, name="bench events", scope=ApiToken.Scope.WRITE)
    return key, stores


def _payloads(total: int, batch: int, retries: float, stores: list[str], seed: int) -> tuple[list[bytes], int]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    bodies: list[bytes] = []
    for start in range(0, total, batch):
        events = []
        for _ in range(min(batch, total - start)):
            name = rng.choice(USAGE) if rng.random() < 0.9 else rng.choice(STANDARD)
            ts = now - timedelta(seconds=rng.randrange(30 * 86_400))
            events.append(
                {
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "product": PRODUCT,
                    "user_id": f"emp-{rng.randrange(5_000):05d}",
                    "event": name,
                    "timestamp": ts.isoformat(),
                    "properties": {"location": rng.choice(stores), "role": rng.choice(ROLES), "app": "bench"},
                }
            )
        bodies.append(json.dumps({"events": events}).encode())
    resent = rng.sample(bodies, int(len(bodies) * retries))
    every = bodies + resent
    rng.shuffle(every)
    return every, len(bodies)


def _client(args: tuple[int, int, str, str]) -> tuple[int, int, int, float]:
    import requests

    index, clients, url, key = args
    session = requests.Session()
    headers = {"Authorization": f"Token {key}", "Content-Type": "application/json"}
    accepted = duplicates = posted = 0
    for body in _PAYLOADS[index::clients]:
        for attempt in range(5):
            response = session.post(url, data=body, headers=headers, timeout=120)
            if response.status_code == 200:
                break
            if attempt == 4:
                raise RuntimeError(f"batch refused: {response.status_code} {response.text[:300]}")
            time.sleep(0.2 * (attempt + 1))
        result = response.json()
        accepted += result["accepted"]
        duplicates += result["duplicates"]
        posted += body.count(b'"event_id"')
    return accepted, duplicates, posted, time.monotonic()


def _cpu_seconds(pids) -> dict[int, float]:
    """User + system CPU time of each process, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def _server_pids(master: int, database: str) -> tuple[list[int], list[int]]:
    """gunicorn's master and workers, and the PostgreSQL backends connected to ``database``."""
    workers, backends = [master], []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == master:
            workers.append(int(entry.name))
        elif cmdline.startswith("postgres:") and f" {database} " in cmdline:
            backends.append(int(entry.name))
    return workers, backends


def _wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited before answering")
        try:
            if requests.get(url, timeout=10).status_code in (200, 503):
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"gunicorn did not answer {url} within {timeout:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="unique events to send")
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=4, help="client processes posting at once")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--retries", type=float, default=0.02, help="share of batches sent twice")
    parser.add_argument("--stores", type=int, default=200)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--seed", type=int, default=None, help="default: a new seed, so every run sends new events")
    args = parser.parse_args()
    if "DATABASE_URL" not in os.environ:
        parser.error("set DATABASE_URL (PostgreSQL), e.g. postgres://postgres@127.0.0.1:5432/opsportal_bench_events")

    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, check=True)
    key, stores = _setup(args.stores)
    from django.db import connection

    from apps.adoption.models import Event
    from apps.adoption.services import rollups_refresh
    from apps.catalog.models import Product

    product = Product.objects.get(slug=PRODUCT)
    before = Event.objects.filter(product=product).count()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    bodies, unique_batches = _payloads(args.events, args.batch, args.retries, stores, seed)
    _PAYLOADS.extend(bodies)
    database = connection.settings_dict["NAME"]
    print(f"database: {connection.vendor} {database}; {before:,} bench events stored before")
    print(
        f"payloads: {args.events:,} unique events in {unique_batches} batches of {args.batch}, "
        f"{len(bodies) - unique_batches} batches re-sent; {sum(map(len, bodies)) / 1e6:.1f} MB of JSON"
    )
    connection.close()

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "opsportal.settings.base",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    if "CELERY_BROKER_URL" not in os.environ:
        # The rollup refresh each batch queues goes to a throw-away folder, not the portal's own broker.
        env["OPSPORTAL_BROKER_DIR"] = tempfile.mkdtemp(prefix="bench-events-broker-")
    gunicorn = Path(python).with_name("gunicorn")
    server = subprocess.Popen(
        [
            str(gunicorn),
            "opsportal.wsgi",
            "-b",
            f"127.0.0.1:{args.port}",
            "-w",
            str(args.workers),
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{args.port}"
        _wait_until_up(f"{base}/healthz", server)
        url = f"{base}/api/v1/events/batch/"
        time.sleep(2)  # let every worker finish booting, so the CPU figures below are the ingestion's own
        cpu_before = _cpu_seconds([p for group in _server_pids(server.pid, database) for p in group])
        started = time.monotonic()
        with multiprocessing.get_context("fork").Pool(args.clients) as pool:
            results = pool.map(_client, [(i, args.clients, url, key) for i in range(args.clients)])
        elapsed = max(r[3] for r in results) - started
        workers, backends = _server_pids(server.pid, database)
        cpu_web = _cpu_used(cpu_before, _cpu_seconds(workers))
        cpu_db = _cpu_used(cpu_before, _cpu_seconds(backends))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    accepted = sum(r[0] for r in results)
    duplicates = sum(r[1] for r in results)
    posted = sum(r[2] for r in results)
    stored = Event.objects.filter(product=product).count() - before
    print(
        f"posted {posted:,} events ({len(bodies)} requests) from {args.clients} clients to {args.workers} "
        f"gunicorn workers in {elapsed:.1f}s: {posted / elapsed:,.0f} events/s including re-sent batches"
    )
    print(
        f"accepted {accepted:,}, duplicates {duplicates:,}; "
        f"stored {stored:,} new rows for {args.events:,} unique events"
    )
    if stored != args.events or accepted != args.events:
        raise SystemExit(f"LOST OR DUPLICATED EVENTS: stored {stored:,}, accepted {accepted:,}, sent {args.events:,}")
    per_thousand = (cpu_web + cpu_db) / posted * 1000
    print(
        f"server CPU: {cpu_web:.1f}s gunicorn + {cpu_db:.1f}s PostgreSQL = {per_thousand * 1000:.0f} ms per 1,000 "
        f"events; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    refresh_started = time.monotonic()
    days = rollups_refresh(product_id=product.pk)
    print(f"rollup refresh of the {days} days touched: {time.monotonic() - refresh_started:.1f}s")
    print(f"events/s: {args.events / elapsed:,.0f}")


if __name__ == "__main__":
    main()
