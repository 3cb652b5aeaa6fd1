#!/usr/bin/env python
"""The overview must cost the same for ten thousand or ten million billing line items: it reads rollups.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/opsportal_bench_overview python bench/overview.py

For each size, generates that many billing line items (a year, the demo's services, environments,
regions and accounts, random costs), rolls them up per day exactly as the importer does (group by day,
service, environment, location, provider, sub-account, region, charge category), stores the rollups,
then times the overview page and the KPI API with a logged-in client. Prints the median server times
per size and, as the last line, the ratio large/small of the overview page.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings.test")

import django  # noqa: E402

django.setup()

from decimal import Decimal  # noqa: E402

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.accounts.models import User  # noqa: E402
from apps.billing.models import BillingSource, CostRollup  # noqa: E402
from apps.catalog.models import Environment, Location, Service  # noqa: E402

CHUNK = 2_000_000


def rollups_from_line_items(count: int, seed: int) -> pd.DataFrame:
    """Aggregate `count` generated line items into daily rollups, chunk by chunk (bounded memory)."""
    rng = np.random.default_rng(seed)
    services = list(Service.objects.values_list("pk", flat=True))
    envs = list(Environment.objects.values_list("pk", flat=True))
    regions = list(Location.objects.filter(kind=Location.Kind.REGION).values_list("pk", flat=True))
    today = timezone.localdate()
    days = pd.date_range(end=today, periods=365, freq="D").date
    parts = []
    left = count
    while left:
        n = min(CHUNK, left)
        left -= n
        frame = pd.DataFrame(
            {
                "day": rng.choice(days, n),
                "service_id": rng.choice(services, n),
                "environment_id": rng.choice(envs, n),
                "location_id": rng.choice(regions, n),
                "sub_account_id": rng.choice([f"acct-{i}" for i in range(8)], n),
                "region": rng.choice(["eu-west-1", "uksouth", "europe-west2"], n),
                "charge_category": rng.choice(["Usage", "Usage", "Usage", "Tax", "Credit"], n),
                "cost": rng.gamma(2.0, 3.0, n).round(6),
            }
        )
        parts.append(
            frame.groupby([c for c in frame.columns if c != "cost"]).agg(cost=("cost", "sum"), n=("cost", "size"))
        )
    return pd.concat(parts).groupby(level=list(range(7))).sum().reset_index()


def load(size: int) -> int:
    CostRollup.objects.all().delete()
    source, _ = BillingSource.objects.get_or_create(name="bench-overview")
    frame = rollups_from_line_items(size, seed=size)
    rows = [
        CostRollup(
            day=r.day,
            source=source,
            billing_period_start=r.day.replace(day=1),
            service_id=r.service_id,
            environment_id=r.environment_id,
            location_id=r.location_id,
            provider="AWS",
            sub_account_id=r.sub_account_id,
            region=r.region,
            charge_category=r.charge_category,
            currency="USD",
            billed_cost=Decimal(str(r.cost)),
            effective_cost=Decimal(str(r.cost)),
            line_items=int(r.n),
        )
        for r in frame.itertuples()
    ]
    CostRollup.objects.bulk_create(rows, batch_size=5000)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {CostRollup._meta.db_table}")
    return len(rows)


def timed(client: Client, url: str, repeat: int) -> float:
    client.get(url)  # warm caches and connections
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    call_command("load_demo", "--only", "accounts", "catalog", stdout=open(os.devnull, "w"))  # noqa: SIM115
    client = Client()
    client.force_login(User.objects.get(username="cfo"))
    period = timezone.localdate().strftime("%Y-%m")
    results = {}
    for label, size in (("small", args.small), ("large", args.large)):
        started = time.perf_counter()
        rollups = load(size)
        print(f"{label}: {size:,} line items -> {rollups:,} daily rollups in {time.perf_counter() - started:.0f}s")
        page = timed(client, f"/?period={period}", args.repeat)
        api = timed(client, f"/api/v1/kpis/?period={period}", args.repeat)
        results[label] = page
        print(f"{label}: overview page median {page:.0f} ms, KPI API median {api:.0f} ms")
    CostRollup.objects.filter(source__name="bench-overview").delete()
    print(f"ratio large/small={results['large'] / results['small']:.2f}")


if __name__ == "__main__":
    main()
