#!/usr/bin/env python
"""The overview must cost the same for ten thousand or ten million billing line items: it reads rollups.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/opsportal_bench python bench/overview.py

PostgreSQL only. For each size the bench creates its own database (``<name>_ovbench_small`` and
``<name>_ovbench_large``, next to the one DATABASE_URL names, which is never touched), migrates it and
loads the demo organisation but its billing (users, catalog, telemetry, capacity, delivery, adoption,
alerts). Billing is generated instead, all in set-based SQL in the database (``INSERT ... SELECT
generate_series``), so ten million rows load in minutes:

- units of service for every service and day of the year, so unit cost has a denominator;

- a year of line items (to today) for 2,000 cloud resources. Each resource belongs to one service (a
  tenth to none: unallocated cost), one environment, one provider account and region and, in
  production, one sales region; every line item is one resource's usage, tax or credit for an hour of
  one day, with a random cost around the resource's rate. The line items carry their allocation
  (service, environment, location), as an import leaves them;
- the daily rollups are built from those line items exactly as the importer does: grouped by charge
  day, service, environment, location, provider, sub-account, region, charge category, shared flag and
  currency, with the sums of billed and effective cost and the number of line items; then the database
  is vacuumed and analysed, as autovacuum would leave it after such a load.

Then it times the overview page and the KPI API (``/api/v1/kpis/``) with a logged-in client, in one
process per size (the wall time of the request in that process, which is the server's time: there is no
network), alternating the sizes request by request so that a change in the machine's load (it is shared)
weighs on both alike. The KPI figures are not cached: every request computes them. It prints, per size,
the rows loaded and the median times, the machine's load average, and as the last line the ratio
large/small of the overview page's median. The databases are dropped at the end (``--keep`` leaves them
for a rerun with ``--reuse``, which skips the load when the line items are already there).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = 2_000
DAYS = 365


# --- The parent: databases and the report ------------------------------------------------------------------


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit(
            "bench/overview.py needs PostgreSQL: set DATABASE_URL=postgres://USER@HOST:PORT/NAME "
            f"(got {url or 'nothing'!r}); it creates its own databases next to NAME"
        )
    return url


def _with_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin(url: str, *statements: str) -> None:
    import psycopg2

    connection = psycopg2.connect(_with_name(url, "postgres"))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


def _exists(url: str, name: str) -> bool:
    import psycopg2

    connection = psycopg2.connect(_with_name(url, "postgres"))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            return cursor.fetchone() is not None
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10_000, help="line items of the small size")
    parser.add_argument("--large", type=int, default=10_000_000, help="line items of the large size")
    parser.add_argument("--repeat", type=int, default=15, help="timed requests per URL and size")
    parser.add_argument("--keep", action="store_true", help="leave the bench databases in place")
    parser.add_argument("--reuse", action="store_true", help="reuse kept databases that hold the right rows")
    parser.add_argument("--child", nargs=2, metavar=("LABEL", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), reuse=args.reuse)
        return

    url = _database_url()
    base = urlsplit(url).path.lstrip("/") or "opsportal"
    sizes = {"small": args.small, "large": args.large}
    children: dict[str, subprocess.Popen] = {}
    try:
        for label, size in sizes.items():  # one at a time: the loads would fight for the same cores
            name = f"{base}_ovbench_{label}"
            if not (args.reuse and _exists(url, name)):
                _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
            env = {
                **os.environ,
                "DATABASE_URL": _with_name(url, name),
                "DJANGO_SETTINGS_MODULE": "opsportal.settings.test",
            }
            env.pop("CACHE_URL", None)  # the bench's own process-local cache: nothing shared is touched
            command = [sys.executable, __file__, "--child", label, str(size)] + (["--reuse"] if args.reuse else [])
            process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            children[label] = process
            _ask(process, None)  # prints the child's report until it is ready
        results = measure(children, args.repeat)
    finally:
        for process in children.values():
            if process.poll() is None:
                process.stdin.close()
                process.wait()
        if not args.keep:
            for label in sizes:
                _admin(url, f'DROP DATABASE IF EXISTS "{base}_ovbench_{label}" WITH (FORCE)')
    for label, size in sizes.items():
        page, api = (statistics.median(results[label][u]) for u in ("page", "api"))
        print(f"{label} ({size:,} line items): overview page median {page:.0f} ms, KPI API median {api:.0f} ms")
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average (1, 5, 15 min): {load} on {os.cpu_count()} CPUs")
    ratio = {
        u: statistics.median(results["large"][u]) / statistics.median(results["small"][u]) for u in ("page", "api")
    }
    print(f"KPI API large/small={ratio['api']:.2f}")
    print(f"ratio large/small={ratio['page']:.2f}")


def _ask(process: subprocess.Popen, command: str | None) -> float | None:
    """Send a command to a child and return the milliseconds it answers; echo anything else it prints."""
    if command is not None:
        process.stdin.write(command + "\n")
        process.stdin.flush()
    for line in process.stdout:
        if line.startswith("@ms "):
            return float(line.split()[1])
        if line.startswith("@ready"):
            return None
        print(line, end="", flush=True)
    raise SystemExit(f"the bench child stopped (exit code {process.wait()}): see its error above")


def measure(children: dict[str, subprocess.Popen], repeat: int) -> dict[str, dict[str, list[float]]]:
    """Time the page and the API on both sizes in alternation, so a change in the machine's load while the
    bench runs weighs on both sizes alike rather than on whichever size ran then."""
    results = {label: {"page": [], "api": []} for label in children}
    for process in children.values():  # warm connections and the template cache
        _ask(process, "page")
        _ask(process, "api")
    for round_number in range(repeat):
        order = list(children) if round_number % 2 == 0 else list(reversed(children))
        for label in order:
            for url in ("page", "api"):
                results[label][url].append(_ask(children[label], url))
    return results


# --- The child: one size in its own database ---------------------------------------------------------------


def child(label: str, size: int, *, reuse: bool) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings.test")
    import django

    django.setup()
    from django.apps import apps as django_apps
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from apps.accounts.models import User
    from apps.billing.models import BillingLineItem

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    if reuse and User.objects.filter(username="cfo").exists() and _line_items(connection) == size:
        print(f"{label}: reusing {size:,} line items")
    else:
        # Every app's demo data but billing's, which the generated line items below replace.
        others = [c.label for c in django_apps.get_app_configs() if c.name.startswith("apps.") and c.label != "billing"]
        call_command("load_demo", "--only", *others, stdout=open(os.devnull, "w"))  # noqa: SIM115
        with connection.cursor() as cursor:
            cursor.execute("SET work_mem = '256MB'")
            cursor.execute("SET maintenance_work_mem = '512MB'")
        load_billing(connection, size)
        assert BillingLineItem.objects.count() == size
        connection.close()  # the timed requests run with the server's default settings
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM billing_costrollup")
        rollups = cursor.fetchone()[0]
    print(
        f"{label}: {size:,} line items -> {rollups:,} daily rollups, ready in {time.perf_counter() - started:.0f}s",
        flush=True,
    )

    client = Client()
    client.force_login(User.objects.get(username="cfo"))
    period = timezone.localdate().strftime("%Y-%m")
    urls = {"page": f"/?period={period}", "api": f"/api/v1/kpis/?period={period}"}
    print("@ready", flush=True)
    for command in sys.stdin:
        url = urls[command.strip()]
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"{label}: {url} answered {response.status_code}")
        print(f"@ms {elapsed:.3f}", flush=True)


def _line_items(connection) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM billing_billinglineitem")
        return cursor.fetchone()[0]


def load_billing(connection, size: int) -> None:
    """Replace the demo's billing with ``size`` generated line items and their rollups (set-based SQL)."""
    from django.utils import timezone

    from apps.billing.models import BillingImport, BillingLineItem, BillingSource, CostRollup, UnitVolume

    first_day = timezone.localdate() - timedelta(days=DAYS - 1)
    items, rollups = BillingLineItem._meta.db_table, CostRollup._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {items}, {rollups}")
        # Units of service for every service and day, so unit cost has a denominator.
        cursor.execute(
            f"""
            INSERT INTO {UnitVolume._meta.db_table} (service_id, day, units, source, updated_at)
            SELECT s.id, %s::date + d, round((1000 * s.id * (0.8 + 0.4 * random()))::numeric, 6), 'import', now()
            FROM catalog_service s CROSS JOIN generate_series(0, %s - 1) AS d
            ON CONFLICT DO NOTHING
            """,
            [first_day, DAYS],
        )
    source, _ = BillingSource.objects.get_or_create(name="bench-overview", defaults={"format": "auto"})
    months = sorted({(first_day + timedelta(days=i)).replace(day=1) for i in range(DAYS)})
    imports = {
        month: BillingImport.objects.create(
            source=source,
            filename=f"bench-{month:%Y-%m}.csv",
            trigger=BillingImport.Trigger.COMMAND,
            status=BillingImport.Status.SUCCEEDED,
            periods=[month.isoformat()],
            currency="USD",
        ).pk
        for month in months
    }
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # line items are partitioned by import there
            from apps.billing import partitions

            partitions.drop_empty()  # the earlier runs' partitions, emptied above
            for import_id in imports.values():
                cursor.execute(
                    f"CREATE TABLE {partitions.name(import_id)} PARTITION OF {items} FOR VALUES IN ({import_id})"
                )
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute("DROP TABLE IF EXISTS bench_resource, bench_import")
        cursor.execute("CREATE TEMP TABLE bench_import (month date PRIMARY KEY, import_id bigint)")
        cursor.executemany("INSERT INTO bench_import VALUES (%s, %s)", list(imports.items()))
        # The resources: service (a tenth unallocated), environment, account and region, sales region in prod.
        cursor.execute(
            """
            CREATE TEMP TABLE bench_resource AS
            WITH base AS (
                SELECT r,
                       (SELECT array_agg(id ORDER BY id) FROM catalog_service) AS services,
                       (SELECT array_agg(id ORDER BY id) FROM catalog_environment) AS envs,
                       (SELECT array_agg(id ORDER BY id) FROM catalog_location WHERE kind = 'region') AS regions,
                       random() AS b, random() AS c, random() AS d
                FROM generate_series(0, %s - 1) AS r
            ), placed AS (
                SELECT r, d, regions, c,
                       CASE WHEN r %% 10 = 0 THEN NULL ELSE services[1 + (r %% cardinality(services))] END AS service,
                       envs[1 + floor(b * cardinality(envs))::int] AS environment_id,
                       1 + floor(b * cardinality(envs))::int AS env_index,
                       (r %% cardinality(services)) %% 2 = 0 AS on_aws
                FROM base
            )
            SELECT r AS id, service AS service_id, environment_id,
                   CASE WHEN environment_id IN (SELECT id FROM catalog_environment WHERE kind = 'prod')
                        THEN regions[1 + floor(c * cardinality(regions))::int] END AS sales_region_id,
                   CASE WHEN on_aws THEN 'AWS' ELSE 'Microsoft' END AS provider,
                   CASE WHEN on_aws THEN 'eu-west-1' ELSE 'uksouth' END AS region,
                   (CASE WHEN on_aws THEN '2100000000' ELSE 'sub-' END)
                       || coalesce(service, 0)::text || '-' || env_index::text AS sub_account_id,
                   (CASE WHEN on_aws THEN ARRAY['AmazonEC2', 'AmazonS3', 'AmazonRDS']
                         ELSE ARRAY['Virtual Machines', 'Storage', 'SQL Database'] END)[1 + r %% 3] AS service_name,
                   round((0.05 + 2 * d * d)::numeric, 6) AS rate
            FROM placed
            """,
            [RESOURCES],
        )
        # Secondary indexes are built once after the load rather than maintained row by row.
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT LIKE %s",
            [items, "%_pkey"],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute(
            f"""
            INSERT INTO {items} (
                source_id, billing_import_id, row_number, billing_period_start, billing_period_end,
                charge_period_start, charge_period_end, billing_currency, billed_cost, effective_cost,
                list_cost, pricing_quantity, pricing_unit, consumed_quantity, consumed_unit, charge_category,
                charge_class, charge_frequency, provider_name, billing_account_id, sub_account_id, region_id,
                region_name, service_name, resource_id, resource_type, tags, service_id, environment_id,
                location_id, is_shared
            )
            SELECT %(source)s, i.import_id, g.n, date_trunc('month', g.day)::timestamptz,
                   (date_trunc('month', g.day) + interval '1 month')::timestamptz,
                   g.day::timestamptz + make_interval(hours => g.hour),
                   g.day::timestamptz + make_interval(hours => g.hour + 1),
                   'USD', c.cost, c.cost, abs(c.cost), g.quantity, 'Hours', g.quantity, 'Hours', c.category,
                   CASE WHEN c.category = 'Credit' THEN 'Correction' END,
                   CASE WHEN c.category = 'Usage' THEN 'Usage-Based' ELSE 'One-Time' END,
                   r.provider, 'billing-' || r.provider, r.sub_account_id, r.region, r.region, r.service_name,
                   'res-' || r.id, 'instance', jsonb_build_object('resource', r.id), r.service_id,
                   r.environment_id, r.sales_region_id, false
            FROM (
                SELECT n, floor(random() * %(resources)s)::int AS resource,
                       %(first)s::date + (n %% %(days)s) AS day,
                       floor(random() * 24)::int AS hour, random() AS pick, random() AS noise,
                       round((1 + random() * 3)::numeric, 3) AS quantity
                FROM generate_series(1, %(size)s) AS n
            ) AS g
            JOIN bench_resource r ON r.id = g.resource
            JOIN bench_import i ON i.month = date_trunc('month', g.day)::date
            CROSS JOIN LATERAL (
                SELECT CASE WHEN g.pick < 0.9 THEN 'Usage' WHEN g.pick < 0.96 THEN 'Tax' ELSE 'Credit' END
                           AS category,
                       round(((CASE WHEN g.pick < 0.96 THEN 1 ELSE -0.5 END) * (0.5 + g.noise))::numeric * r.rate, 6)
                           AS cost
            ) AS c
            """,
            {"source": source.pk, "resources": RESOURCES, "first": first_day, "days": DAYS, "size": size},
        )
        for _, definition in indexes:
            cursor.execute(definition)
        # The rollups, grouped exactly as the importer groups an import's line items.
        cursor.execute(
            f"""
            INSERT INTO {rollups} (
                day, source_id, billing_period_start, service_id, environment_id, location_id, provider,
                sub_account_id, region, charge_category, is_shared, currency, billed_cost, effective_cost,
                line_items
            )
            SELECT (charge_period_start AT TIME ZONE 'UTC')::date, source_id, billing_period_start::date,
                   service_id, environment_id, location_id, coalesce(provider_name, ''),
                   coalesce(sub_account_id, ''), coalesce(region_id, ''), coalesce(charge_category, ''),
                   is_shared, billing_currency, sum(billed_cost), sum(effective_cost), count(*)
            FROM {items}
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
            """
        )
        # Vacuumed and analysed as autovacuum would leave them after a load, so that the timed requests do
        # not run beside autovacuum's first pass over ten million fresh rows.
        cursor.execute("VACUUM ANALYZE")


if __name__ == "__main__":
    main()
