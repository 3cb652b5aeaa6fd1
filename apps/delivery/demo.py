"""A year of Meridian Markets' delivery: commits, deployments, features and incidents for the demo services.

The data is written as the CSV files a team would export (commits and deployments from CI, features from
the tracker, incidents from the paging tool) and sent through the CSV importer, the same path real data
takes. It is generated from a fixed seed and anchored at today's midnight (UTC), so loading it twice on the
same day changes nothing, and a later load updates the same ids in place.
"""

import csv
import hashlib
import importlib
import io
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from django.utils import timezone

from apps.catalog.models import Team

from .models import DeliverySource
from .services import delivery_csv_import, team_delivery_profile_set

SEED = 20261127
DAYS = 365


@dataclass(frozen=True)
class ServiceProfile:
    slug: str
    team: str
    key: str  # the tracker's project key
    commits_per_week: float
    deploys_per_week: float
    failure_rate: float  # share of production deployments that fail
    incident_rate: float  # share of successful ones that cause an incident
    uat_first: bool  # edge services go through UAT before production
    effort_unit: str = "hours"


SERVICES = [
    ServiceProfile("ml-platform", "platform", "MLP", 15, 8, 0.03, 0.04, False),
    ServiceProfile("promotions", "pricing-ml", "PROMO", 10, 5, 0.04, 0.05, False, "points"),
    ServiceProfile("price-forecast", "pricing-ml", "PRICE", 8, 3, 0.05, 0.05, False, "points"),
    ServiceProfile("smart-cart", "checkout", "CART", 8, 2.5, 0.08, 0.09, True),
    ServiceProfile("shelf-vision", "vision", "SHELF", 6, 1.5, 0.07, 0.10, True),
]
HOURS_PER_POINT = {"pricing-ml": Decimal("6.50")}
FEATURE_TITLES = [
    "Weekend demand uplift",
    "Store cluster override",
    "Faster batch scoring",
    "Promo fatigue guard",
    "Gap alert de-duplication",
    "Planogram v3 support",
    "Cart weight cross-check",
    "Offline basket sync",
    "GPU autoscaling policy",
    "Feature store backfill",
    "Model card export",
    "Markdown optimiser",
    "Price ladder rules",
    "Loyalty-aware offers",
    "Night restock mode",
    "Low-light detection",
    "Checkout receipt QR",
    "Shadow deployment switch",
    "Drift report per region",
    "Canary rollback hook",
]


@dataclass
class Generated:
    changes: list[dict] = field(default_factory=list)
    deployments: list[dict] = field(default_factory=list)
    features: list[dict] = field(default_factory=list)
    incidents: list[dict] = field(default_factory=list)


def _sha(*parts) -> str:
    return hashlib.sha1(":".join(str(p) for p in ("meridian", *parts)).encode()).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _working_time(moment: datetime, rng: random.Random) -> datetime:
    """Move a moment into working hours (Mon-Fri, 08:00-19:00 UTC): teams commit and deploy by day."""
    while moment.weekday() >= 5 or not 8 <= moment.hour < 19:
        moment = datetime.combine(moment.date() + timedelta(days=1), time(8), tzinfo=UTC)
        moment += timedelta(minutes=rng.randint(0, 9 * 60))
    return moment


def _events(start: datetime, end: datetime, per_week: float, rng: random.Random) -> list[datetime]:
    events, moment = [], start
    working_hours_per_week = 55
    while True:
        moment = _working_time(moment + timedelta(hours=rng.expovariate(per_week / working_hours_per_week)), rng)
        if moment >= end:
            return events
        events.append(moment)


def _restore_hours(rng: random.Random) -> float:
    # Most incidents are rolled back within hours; one in eight drags on for a day or two.
    return rng.uniform(14, 60) if rng.random() < 0.125 else rng.lognormvariate(0.7, 0.8)


def generate(*, anchor: datetime) -> Generated:
    rng = random.Random(SEED)
    start = anchor - timedelta(days=DAYS)
    out = Generated()
    incident_no = 0
    for profile in SERVICES:
        commits = [
            (_sha(profile.slug, i), t) for i, t in enumerate(_events(start, anchor, profile.commits_per_week, rng))
        ]
        out.changes += [{"commit": sha, "committed_at": _iso(t), "service": profile.slug} for sha, t in commits]

        pending, next_commit, deploy_no = [], 0, 0
        for when in _events(start + timedelta(days=2), anchor, profile.deploys_per_week, rng):
            while next_commit < len(commits) and commits[next_commit][1] < when - timedelta(minutes=30):
                pending.append(commits[next_commit][0])
                next_commit += 1
            if not pending:
                continue
            deploy_no += 1
            if profile.uat_first:
                out.deployments.append(
                    _deployment(profile, f"uat-{deploy_no:05d}", "uat", when - timedelta(hours=4), "success", pending)
                )
            failed = rng.random() < profile.failure_rate
            dep_id = f"{profile.slug}-{deploy_no:05d}"
            out.deployments.append(
                _deployment(profile, dep_id, "prod", when, "failure" if failed else "success", pending)
            )
            if failed:
                continue  # the same changes go out again with the next deployment
            pending = []
            if rng.random() < profile.incident_rate:
                incident_no += 1
                began = when + timedelta(minutes=rng.randint(10, 6 * 60))
                ended = began + timedelta(hours=_restore_hours(rng))
                out.incidents.append(
                    {
                        "incident_id": f"INC-{incident_no:04d}",
                        "service": profile.slug,
                        "title": rng.choice(
                            ["Error rate above SLO", "Latency spike", "Stale predictions", "Edge nodes crash-looping"]
                        ),
                        "started_at": _iso(began),
                        "resolved_at": _iso(ended) if ended < anchor else "",
                        "deployment_id": dep_id,
                        "deployment_source": "meridian-ci",
                    }
                )
        out.features += _features(profile, commits, rng)
    return out


def _deployment(profile: ServiceProfile, dep_id: str, env: str, when: datetime, status: str, shas: list[str]) -> dict:
    return {
        "deployment_id": dep_id if env == "prod" else f"{profile.slug}-{dep_id}",
        "service": profile.slug,
        "environment": env,
        "deployed_at": _iso(when),
        "status": status,
        "commit": shas[-1],
        "changes": " ".join(shas[:-1]),
    }


def _features(profile: ServiceProfile, commits: list[tuple[str, datetime]], rng: random.Random) -> list[dict]:
    """Group consecutive commits into features; about one commit in four is a chore that belongs to none."""
    features, i, number = [], 0, 100
    while i < len(commits):
        if rng.random() < 0.25:
            i += 1
            continue
        size = rng.randint(2, 5)
        group = commits[i : i + size]
        i += size
        number += 1
        if profile.effort_unit == "points":
            effort = str(rng.choice([2, 3, 5, 5, 8, 8, 13]))
        else:
            effort = str(rng.choice([16, 24, 32, 40, 56, 72, 96, 120]) + rng.choice([0, 4, 8]))
        features.append(
            {
                "feature_id": f"{profile.key}-{number}",
                "title": f"{rng.choice(FEATURE_TITLES)} ({profile.key}-{number})",
                "service": profile.slug,
                "team": profile.team,
                "effort": effort,
                "effort_unit": profile.effort_unit,
                "changes": " ".join(sha for sha, _ in group),
            }
        )
    return features


def _csv(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _ensure_dora_benchmarks() -> None:
    """The tiers come with migrate; a database emptied since (a flushed test database) gets them again."""
    from django.apps import apps as live_apps

    importlib.import_module("apps.delivery.migrations.0002_dora_benchmarks").load(live_apps, None)


def load(*, log) -> None:
    _ensure_dora_benchmarks()
    anchor = datetime.combine(timezone.now().astimezone(UTC).date(), time.min, tzinfo=UTC)
    data = generate(anchor=anchor)
    for team_slug, hours in HOURS_PER_POINT.items():
        team = Team.objects.filter(slug=team_slug).first()
        if team is not None:
            team_delivery_profile_set(team=team, hours_per_point=hours)
    DeliverySource.objects.update_or_create(
        slug="github-meridian",
        defaults={
            "name": "GitHub (meridian-markets)",
            "kind": DeliverySource.Kind.GITHUB,
            "secret_env_var": "OPSPORTAL_DELIVERY_GITHUB_SECRET",
            "repository_services": {f"meridian-markets/{p.slug}": p.slug for p in SERVICES},
        },
    )
    files = [
        ("changes", "meridian-ci", data.changes),
        ("deployments", "meridian-ci", data.deployments),
        ("features", "jira", data.features),
        ("incidents", "pagerduty", data.incidents),
    ]
    counts = []
    for kind, source, rows in files:
        result = delivery_csv_import(kind=kind, content=_csv(rows), filename=f"demo-{kind}.csv", source_slug=source)
        counts.append(f"{result.rows} {kind} ({result.created} new)")
    log("delivery: " + ", ".join(counts) + f" over the {DAYS} days to {anchor:%Y-%m-%d}")
