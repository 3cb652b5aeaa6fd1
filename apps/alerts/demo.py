"""Demo SLA rules for Meridian Markets' models, created through the same services as the rule form, then evaluated
over the demo telemetry (every half hour of the last day, then now) by the real evaluation cycle.

One rule fires (the promotion ranker canary's error rate is above the 0.3 % SLA), one fires but is silenced (the
shelf gap detector's p95 latency, with a silence saying why); the others hold. Drift rules get a week of
prediction and feature histograms pushed through the distributions API's service. Running the demo again changes
nothing that has not changed, and evaluates only times not evaluated yet.
"""

import math
from datetime import UTC, timedelta
from decimal import Decimal
from itertools import pairwise

from django.utils import timezone

from apps.accounts.models import User
from apps.catalog.models import CapacityPool, Environment, MLModel, ModelVersion, Team

from . import services
from .distributions import distributions_push
from .models import AlertRule, EvaluatorState, NotificationChannel, Silence, TeamAlertContact

HISTORY_HOURS = 24
STEP_MINUTES = 30
SILENCE_COMMENT = "Known: planogram firmware rollout slows edge inference in the North East; vision team on it."

CHANNELS = [
    {"name": "Owners by email", "kind": "email", "email_owner": True},
    {
        "name": "On-call webhook",
        "kind": "webhook",
        "url": "https://oncall.meridian-markets.example/hooks/opsportal",
        "secret_env_var": "OPSPORTAL_ALERTS_WEBHOOK_SECRET",
        "enabled": False,  # until an on-call endpoint is configured
    },
]
TEAM_CONTACTS = {
    "pricing-ml": "pricing-ml-oncall@meridian-markets.example",
    "vision": "vision-oncall@meridian-markets.example",
    "platform": "ml-platform-oncall@meridian-markets.example",
    "checkout": "checkout-oncall@meridian-markets.example",
}

# name, fields (slugs resolved below)
RULES = [
    (
        "Promotion ranker canary error rate",
        {
            "description": "The 2.2.0 canary must fail no more than 0.3 % of requests, the champion's SLA.",
            "metric": "error_rate",
            "model": "promo-ranker",
            "version": "2.2.0",
            "environment": "prod",
            "comparison": "gt",
            "threshold": "0.003",
            "recovery_threshold": "0.0025",
            "window_minutes": 60,
            "consecutive_breaches": 2,
            "no_data": "keep",
            "severity": "critical",
            "owner_user": "pm",
            "escalation_user": "admin",
            "escalate_after_minutes": 30,
            "runbook": "Compare the canary with 2.1.0 on the model health page; roll the canary back in the "
            "promotions deployment if errors persist.",
        },
    ),
    (
        "Promotion ranker p95 latency",
        {
            "metric": "latency_p95",
            "model": "promo-ranker",
            "environment": "prod",
            "comparison": "gt",
            "threshold": "250",
            "recovery_threshold": "200",
            "window_minutes": 60,
            "consecutive_breaches": 3,
            "no_data": "keep",
            "severity": "critical",
            "owner_team": "pricing-ml",
            "runbook": "https://runbooks.meridian-markets.example/promo-ranker/latency",
        },
    ),
    (
        "Shelf gap detector p95 latency",
        {
            "description": "Edge inference must answer within 100 ms at p95 for gap alerts to reach staff in time.",
            "metric": "latency_p95",
            "model": "shelf-gap-detector",
            "version": "3.0.1",
            "environment": "prod",
            "comparison": "gt",
            "threshold": "100",
            "window_minutes": 60,
            "consecutive_breaches": 2,
            "no_data": "keep",
            "severity": "warning",
            "owner_user": "pm2",
        },
    ),
    (
        "Cart item recogniser error rate",
        {
            "metric": "error_rate",
            "model": "cart-item-recogniser",
            "environment": "prod",
            "comparison": "gt",
            "threshold": "0.02",
            "window_minutes": 120,
            "consecutive_breaches": 3,
            "no_data": "keep",
            "severity": "critical",
            "owner_user": "pm2",
        },
    ),
    (
        "Cart item recogniser stopped serving",
        {
            "metric": "throughput",
            "model": "cart-item-recogniser",
            "environment": "prod",
            "comparison": "lt",
            "threshold": "0.5",
            "window_minutes": 60,
            "consecutive_breaches": 5,
            "no_data": "alert",
            "severity": "critical",
            "owner_team": "checkout",
        },
    ),
    (
        "A10G GPU fleet utilisation",
        {
            "metric": "utilisation",
            "pool": "gpu-a10g-prod",
            "comparison": "gt",
            "threshold": "0.95",
            "window_minutes": 180,
            "consecutive_breaches": 3,
            "no_data": "keep",
            "severity": "warning",
            "owner_team": "platform",
            "group_by": ["pool"],
            "runbook": "The fleet is close to exhaustion: see the capacity page's forecast before adding nodes.",
        },
    ),
    (
        "Price elasticity feature drift",
        {
            "metric": "feature_drift",
            "model": "price-elasticity",
            "version": "1.4.2",
            "environment": "prod",
            "drift_method": "psi",
            "drift_reference": "pushed",
            "comparison": "gt",
            "threshold": "0.25",
            "window_minutes": 1440,
            "consecutive_breaches": 1,
            "no_data": "keep",
            "severity": "warning",
            "owner_team": "pricing-ml",
        },
    ),
    (
        "Price elasticity prediction drift",
        {
            "metric": "prediction_drift",
            "model": "price-elasticity",
            "version": "1.4.2",
            "environment": "prod",
            "drift_method": "psi",
            "drift_reference": "previous",
            "drift_reference_days": 7,
            "comparison": "gt",
            "threshold": "0.2",
            "window_minutes": 1440,
            "consecutive_breaches": 1,
            "no_data": "keep",
            "severity": "info",
            "owner_team": "pricing-ml",
        },
    ),
]
CHANNELS_OF = {
    "Promotion ranker canary error rate": ["Owners by email"],
    "Shelf gap detector p95 latency": ["Owners by email"],
    "Promotion ranker p95 latency": ["Owners by email", "On-call webhook"],
}

BINS = [0, 5, 10, 15, 20, 25, 30, 40]


def _histogram(mean: float, spread: float, total: int) -> list[int]:
    """Counts of a normal(mean, spread) sample of ``total`` over BINS (deterministic)."""

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf((x - mean) / (spread * math.sqrt(2))))

    return [round(total * (cdf(b) - cdf(a))) for a, b in pairwise(BINS)]


def _push_distributions(now) -> int:
    day0 = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    refs = {"model": "price-elasticity", "version": "1.4.2", "environment": "prod"}
    items = [
        {
            **refs,
            "feature": "discount_depth",
            "timestamp": (day0 - timedelta(days=60)).isoformat(),
            "reference": True,
            "histogram": {"edges": BINS, "counts": _histogram(12, 5, 20_000)},
        },
        {
            **refs,
            "feature": "shelf_price",
            "timestamp": (day0 - timedelta(days=60)).isoformat(),
            "reference": True,
            "histogram": {"edges": BINS, "counts": _histogram(18, 7, 20_000)},
        },
    ]
    for d in range(8, -1, -1):
        stamp = (day0 - timedelta(days=d)).isoformat()
        drift = 0.25 * (8 - d)  # discount depth creeps up as promotions deepen
        items.append(
            {
                **refs,
                "feature": "discount_depth",
                "timestamp": stamp,
                "histogram": {"edges": BINS, "counts": _histogram(12 + drift, 5, 3_000)},
            }
        )
        items.append(
            {
                **refs,
                "feature": "shelf_price",
                "timestamp": stamp,
                "histogram": {"edges": BINS, "counts": _histogram(18, 7, 3_000)},
            }
        )
        items.append(
            {**refs, "timestamp": stamp, "histogram": {"edges": BINS, "counts": _histogram(9 + 0.1 * d, 4, 3_000)}}
        )
    return distributions_push(items=items, now=now).stored


def _rule(name: str, spec: dict, *, actor, catalog: dict) -> AlertRule:
    rule = AlertRule.objects.filter(name=name).first() or AlertRule(name=name)
    for field, value in spec.items():
        if field in ("model", "environment", "pool", "owner_team"):
            value = catalog[field][value]
        elif field in ("owner_user", "escalation_user"):
            value = catalog["user"][value]
        elif field == "version":
            value = catalog["version"][(spec["model"], value)]
        elif field in ("threshold", "recovery_threshold"):
            value = Decimal(value)
        setattr(rule, field, value)
    if not rule.group_by:
        rule.group_by = spec.get("group_by", ["model", "version", "environment"])
    channels = list(NotificationChannel.objects.filter(name__in=CHANNELS_OF.get(name, [])))
    return services.rule_save(rule=rule, channels=channels, actor=actor)


def load(*, log) -> None:
    now = timezone.now()
    admin = User.objects.get(username="admin")
    for spec in CHANNELS:
        channel = NotificationChannel.objects.filter(name=spec["name"]).first() or NotificationChannel()
        for field, value in spec.items():
            setattr(channel, field, value)
        services.channel_save(channel=channel, actor=admin)
    for slug, email in TEAM_CONTACTS.items():
        team = Team.objects.filter(slug=slug).first()
        if team is not None:
            TeamAlertContact.objects.update_or_create(team=team, defaults={"email": email})
    catalog = {
        "model": {m.slug: m for m in MLModel.objects.all()},
        "environment": {e.slug: e for e in Environment.objects.all()},
        "pool": {p.slug: p for p in CapacityPool.objects.all()},
        "owner_team": {t.slug: t for t in Team.objects.all()},
        "user": {u.username: u for u in User.objects.all()},
        "version": {(v.model.slug, v.version): v for v in ModelVersion.objects.select_related("model")},
    }
    rules = {name: _rule(name, spec, actor=admin, catalog=catalog) for name, spec in RULES}
    distributions = _push_distributions(now)

    silenced = rules["Shelf gap detector p95 latency"]
    if not Silence.objects.filter(rule=silenced, comment=SILENCE_COMMENT, ends_at__gt=now).exists():
        services.silence_save(
            silence=Silence(
                rule=silenced,
                starts_at=now - timedelta(hours=HISTORY_HOURS + 1),
                ends_at=now + timedelta(days=2),
                comment=SILENCE_COMMENT,
            ),
            actor=admin,
        )

    # Evaluate the last day every half hour (times already evaluated are skipped), then now.
    last = EvaluatorState.get().last_slot
    start = (now - timedelta(hours=HISTORY_HOURS)).replace(second=0, microsecond=0)
    moments = [start + timedelta(minutes=STEP_MINUTES * i) for i in range(HISTORY_HOURS * 60 // STEP_MINUTES)]
    moments = [m for m in moments if last is None or m > last] + [now]
    totals = {"cycles": 0, "opened": 0, "fired": 0, "resolved": 0, "notifications": 0}
    for moment in moments:
        result = services.evaluation_cycle(at=moment)
        if result.evaluated:
            totals["cycles"] += 1
            totals["opened"] += result.opened
            totals["fired"] += result.fired
            totals["resolved"] += result.resolved
            totals["notifications"] += len(result.notifications)
    log(
        f"alerts: {len(rules)} rules, {distributions} distributions pushed, {totals['cycles']} evaluation cycles: "
        f"{totals['opened']} alerts opened, {totals['fired']} fired, {totals['resolved']} resolved, "
        f"{totals['notifications']} notifications queued"
    )
