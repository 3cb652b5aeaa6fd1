#!/usr/bin/env python
"""Alert evaluation speed: one evaluation cycle of N rules over stored telemetry.

    python bench/alerts.py --rules 10000                      # a SQLite file in /tmp
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/opsportal_bench_alerts python bench/alerts.py --rules 10000

Builds a catalog of 40 models x 3 versions in 2 environments and 12 capacity pools, pushes 26 hours of hourly
telemetry (requests, errors, four latency samples per hour; used and provisioned capacity) through the telemetry
push service, then creates N rules mixing latency p50/p95/p99, error rate, throughput, accuracy (no data) and
pool utilisation, over model, version, environment, service or whole-estate scopes, with thresholds that make
a few percent of the instances breach; a fifth of the rules notify an email channel. It then times one
evaluation cycle (``services.evaluation_cycle``, what the beat task runs): the first, which opens the alerts and
queues their notifications, and a second one a minute later. The database must be a scratch one: the bench
replaces the rules, alerts and telemetry in it. The last line is the first cycle's seconds.
"""

import argparse
import os
import random
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/opsportal-bench-alerts.sqlite3")
os.environ.setdefault("OPSPORTAL_BROKER_DIR", "/tmp/opsportal-bench-alerts-broker")
os.environ["DJANGO_SETTINGS_MODULE"] = "opsportal.settings.test"

MODELS, VERSIONS, POOLS, HOURS = 40, 3, 12, 26


def build_catalog():
    from apps.accounts.models import User
    from apps.catalog.models import CapacityPool, Environment, MLModel, ModelVersion, Service, Team

    team, _ = Team.objects.get_or_create(slug="bench-team", defaults={"name": "Bench team", "hourly_rate": 100})
    envs = [
        Environment.objects.get_or_create(slug=slug, defaults={"name": slug, "kind": kind})[0]
        for slug, kind in (("bench-prod", "prod"), ("bench-uat", "uat"))
    ]
    services = [
        Service.objects.get_or_create(
            slug=f"bench-svc-{i}", defaults={"name": f"Bench {i}", "team": team, "unit_name": "request"}
        )[0]
        for i in range(8)
    ]
    versions = []
    for m in range(MODELS):
        model, _ = MLModel.objects.get_or_create(
            slug=f"bench-model-{m:02d}",
            defaults={
                "name": f"Bench model {m:02d}",
                "task": "classification",
                "service": services[m % 8],
                "team": team,
            },
        )
        for v in range(VERSIONS):
            stage = "production" if v == 0 else "staging"
            versions.append(
                ModelVersion.objects.get_or_create(model=model, version=f"{v}.0", defaults={"stage": stage})[0]
            )
    pools = [
        CapacityPool.objects.get_or_create(
            slug=f"bench-pool-{p:02d}",
            defaults={"name": f"Bench pool {p}", "resource_type": "gpu", "environment": envs[0]},
        )[0]
        for p in range(POOLS)
    ]
    owner, _ = User.objects.get_or_create(
        username="bench-owner", defaults={"email": "owner@bench.example", "role": "product_manager"}
    )
    return envs, services, versions, pools, owner


def push_telemetry(envs, versions, pools, now) -> int:
    from apps.alerts.evaluation import floor_hour
    from apps.telemetry.services import telemetry_push

    rng = random.Random(7)
    end = floor_hour(now)
    batch, pushed = [], 0

    def flush():
        nonlocal batch, pushed
        if batch:
            telemetry_push(points=batch, now=now + timedelta(minutes=1))
            pushed += len(batch)
            batch = []

    for h in range(HOURS, -1, -1):
        start = end - timedelta(hours=h)
        if start > now - timedelta(minutes=1):
            continue
        for version in versions:
            for env in envs:
                refs = {"model": version.model.slug, "version": version.version, "environment": env.slug}
                requests = rng.randint(2_000, 20_000)
                batch.append({"metric": "request_count", "timestamp": start.isoformat(), "value": requests, **refs})
                batch.append(
                    {
                        "metric": "error_count",
                        "timestamp": start.isoformat(),
                        "value": int(requests * rng.uniform(0, 0.04)),
                        **refs,
                    }
                )
                base = rng.uniform(40, 400)
                for q in range(4):
                    ts = start + timedelta(minutes=q * 12)
                    value = round(base * rng.uniform(0.7, 1.6), 2)
                    if ts <= now:
                        batch.append({"metric": "latency_ms", "timestamp": ts.isoformat(), "value": value, **refs})
        for pool in pools:
            batch.append(
                {"metric": "gpu_used", "pool": pool.slug, "timestamp": start.isoformat(), "value": rng.uniform(2, 16)}
            )
            batch.append({"metric": "gpu_provisioned", "pool": pool.slug, "timestamp": start.isoformat(), "value": 16})
        if len(batch) > 8000:
            flush()
    flush()
    return pushed


def create_rules(n, envs, services, versions, pools, owner, channel) -> None:
    from apps.alerts.models import AlertRule

    rng = random.Random(11)
    kinds = [
        ("latency_p95", 0.25, (450, 900)),
        ("latency_p99", 0.15, (500, 1100)),
        ("latency_p50", 0.10, (300, 700)),
        ("error_rate", 0.25, (0.03, 0.06)),
        ("throughput", 0.10, (0.2, 1.2)),
        ("accuracy", 0.05, (0.8, 0.95)),
        ("utilisation", 0.10, (0.8, 0.99)),
    ]
    weights = [k[1] for k in kinds]
    rules = []
    for i in range(n):
        metric, _, (low, high) = rng.choices(kinds, weights)[0]
        rule = AlertRule(
            name=f"bench rule {i:05d}",
            metric=metric,
            threshold=Decimal(str(round(rng.uniform(low, high), 4))),
            comparison="lt" if metric in ("throughput", "accuracy") else "gt",
            window_minutes=rng.choice([60, 60, 120, 180]),
            consecutive_breaches=rng.choice([1, 2, 3]),
            no_data=rng.choice(["ok", "keep", "keep", "alert"]),
            severity=rng.choice(["critical", "warning", "info"]),
            owner_user=owner,
            group_by=["pool"] if metric == "utilisation" else ["model", "version", "environment"],
        )
        if metric == "utilisation":
            rule.pool = rng.choice(pools) if rng.random() < 0.7 else None
        else:
            version = rng.choice(versions)
            scope = rng.random()
            if scope < 0.35:
                rule.model = version.model
            elif scope < 0.65:
                rule.model, rule.version = version.model, version
            elif scope < 0.85:
                rule.model, rule.environment = version.model, rng.choice(envs)
            elif scope < 0.97:
                rule.service = rng.choice(services)
        rules.append(rule)
    AlertRule.objects.bulk_create(rules, batch_size=1000)
    through = AlertRule.channels.through
    ids = list(AlertRule.objects.values_list("pk", flat=True))
    through.objects.bulk_create(
        [through(alertrule_id=pk, notificationchannel_id=channel.pk) for pk in ids if pk % 5 == 0], batch_size=1000
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=10_000)
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.urls import reverse
    from django.utils import timezone

    from apps.alerts.models import Alert, AlertRule, AuditEntry, EvaluatorState, Notification, NotificationChannel
    from apps.alerts.services import evaluation_cycle
    from apps.telemetry.models import Point, Rollup, Series

    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    started = time.perf_counter()
    for model in (Notification, AuditEntry, Alert, AlertRule, NotificationChannel, Rollup, Point, Series):
        model.objects.all().delete()
    EvaluatorState.objects.all().delete()
    envs, services, versions, pools, owner = build_catalog()
    now = timezone.now().replace(second=0, microsecond=0)
    points = push_telemetry(envs, versions, pools, now)
    channel = NotificationChannel.objects.create(name="bench email", kind="email", email_to=["oncall@bench.example"])
    create_rules(args.rules, envs, services, versions, pools, owner, channel)
    print(
        f"setup: {len(versions)} model versions x {len(envs)} environments, {len(pools)} pools, {points:,} telemetry "
        f"points, {AlertRule.objects.count():,} rules in {time.perf_counter() - started:.1f}s"
    )

    reverse("alerts:list")  # a worker has its URLs loaded after its first notification; do not time the import
    cpu = time.process_time()
    first = evaluation_cycle(at=now)
    cpu_first = time.process_time() - cpu
    print(
        f"cycle 1: {first.rules:,} rules, {first.instances:,} instances, {first.opened:,} alerts opened "
        f"({first.fired:,} firing at once), {len(first.notifications):,} notifications, {len(first.errors)} errors "
        f"in {first.seconds:.2f}s ({cpu_first:.2f}s CPU in this process)"
    )
    cpu = time.process_time()
    second = evaluation_cycle(at=now + timedelta(minutes=1))
    print(
        f"cycle 2: {second.fired:,} more fired, {second.resolved:,} resolved, {len(second.notifications):,} "
        f"notifications in {second.seconds:.2f}s ({time.process_time() - cpu:.2f}s CPU in this process)"
    )
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    print(f"{first.seconds:.2f}")


if __name__ == "__main__":
    main()
