"""A year of adoption for the demo products, sent through the event and NPS ingestion services.

About 3,000 employees of the 1,900 demo stores discover each product at a demo, request and start a
trial, some ask for a second one, complete training, rate it and keep using it (or drift away);
product managers run a quarterly NPS pulse. Every employee's story is drawn from a random generator
seeded by the product and the employee, so running the demo again re-sends the same events (same
event ids), which the ingestion skips as duplicates; only days since the last run are new.
"""

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Min
from django.utils import timezone

from apps.accounts.models import User
from apps.catalog.models import Location, Product

from .models import Event, EventName, NpsCampaign, TrialEvent, UserDay
from .services import adoption_target_set, events_ingest, nps_campaign_create, nps_responses_ingest, rollups_refresh

EMPLOYEES = 3_000
STORY_DAYS = 540  # trial requests spread over 18 months from the start; the demo shows the first year
BATCH = 1_000
ROLES = [
    ("store_colleague", 0.62),
    ("store_manager", 0.22),
    ("replenishment_lead", 0.06),
    ("pricing_analyst", 0.04),
    ("category_manager", 0.04),
    ("regional_manager", 0.02),
]


@dataclass(frozen=True)
class ProductPlan:
    slug: str
    roles: frozenset[str]
    launch_month: int  # months after the demo year begins
    reach: float  # share of eligible employees who ever request a trial
    activation: float  # share of trial starters who go on to use it
    intensity: float  # chance an active user uses it on a working day
    churn: float  # monthly chance an active user stops
    rating: float  # mean rating, 1-5
    nps_bias: float  # shifts NPS answers


PLANS = [
    ProductPlan(
        "price-forecasting",
        frozenset({"store_manager", "pricing_analyst", "category_manager", "regional_manager"}),
        0,
        0.95,
        0.74,
        0.45,
        0.05,
        4.1,
        1.0,
    ),
    ProductPlan(
        "real-time-promotions",
        frozenset({"store_manager", "category_manager", "pricing_analyst", "regional_manager"}),
        2,
        0.8,
        0.61,
        0.30,
        0.09,
        3.6,
        -0.5,
    ),
    ProductPlan(
        "smart-cart",
        frozenset({"store_colleague", "store_manager", "replenishment_lead"}),
        3,
        0.5,
        0.68,
        0.22,
        0.07,
        3.9,
        0.4,
    ),
    ProductPlan(
        "shelf-vision",
        frozenset({"store_colleague", "store_manager", "replenishment_lead", "regional_manager"}),
        5,
        0.45,
        0.55,
        0.25,
        0.10,
        3.4,
        -1.0,
    ),
]

COMMENTS = {
    "promoter": [
        "Saves me an hour every morning.",
        "Much better than the old spreadsheet.",
        "The suggestions are usually right and the team trusts them now.",
        "Easy to use on the shop floor.",
    ],
    "passive": [
        "Useful, but slow to load on the store tablet.",
        "Good idea; needs fewer clicks.",
        "Works well once you learn where things are.",
    ],
    "detractor": [
        "Recommendations often miss local events.",
        "Training was too short for the night shift.",
        "Crashes when the store Wi-Fi drops.",
        "I don't see what it changes for my aisle.",
    ],
}


def _employees(stores: list[str], rng: random.Random) -> list[tuple[str, str, str]]:
    roles, weights = zip(*ROLES, strict=True)
    return [(f"emp-{i:05d}", rng.choice(stores), rng.choices(roles, weights)[0]) for i in range(1, EMPLOYEES + 1)]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _at(day: date, rng: random.Random, start_hour: int = 7, end_hour: int = 19) -> datetime:
    seconds = rng.randrange(start_hour * 3600, end_hour * 3600)
    return datetime.combine(day, time.min, tzinfo=UTC) + timedelta(seconds=seconds)


def _journey(
    plan: ProductPlan, product: Product, emp: tuple[str, str, str], start: date, now: datetime
) -> tuple[bool, list[dict]]:
    """Whether the employee ever tries the product in the story, and their events up to ``now``.

    Deterministic for (product, employee, start): the random draws never depend on ``now``, so a
    later run regenerates the same events with the same ids and adds only the newer ones.
    """
    user, store, role = emp
    rng = random.Random(f"{plan.slug}:{user}:{start.isoformat()}")
    if role not in plan.roles or rng.random() > plan.reach:
        return False, []
    usage = product.usage_event_names or []
    launch = start + timedelta(days=30 * plan.launch_month)
    span = max(1, (start + timedelta(days=STORY_DAYS) - launch).days)
    # Interest builds up after launch: later days more likely, so adoption keeps growing.
    request_day = launch + timedelta(days=int(span * rng.random() ** 0.7))
    events: list[dict] = []

    def add(name: str, when: datetime, **props) -> None:
        event_id = _uuid(rng)
        if when <= now:
            props = {"location": store, "role": role, **props}
            events.append(
                {
                    "event_id": event_id,
                    "product": plan.slug,
                    "user_id": user,
                    "event": name,
                    "timestamp": when.isoformat(),
                    "properties": props,
                }
            )

    if rng.random() < 0.45:
        add(EventName.DEMO_ATTENDED, _at(request_day - timedelta(days=rng.randint(1, 10)), rng, 9, 17))
    add(EventName.TRIAL_REQUESTED, _at(request_day, rng))
    if rng.random() > 0.86:
        return True, events
    trial_day = request_day + timedelta(days=rng.randint(0, 5))
    add(EventName.TRIAL_STARTED, _at(trial_day, rng))
    if rng.random() < 0.55:
        add(EventName.TRAINING_COMPLETED, _at(trial_day + timedelta(days=rng.randint(1, 14)), rng, 8, 18))
    if rng.random() < 0.34:
        add(EventName.SECOND_TRIAL_REQUESTED, _at(trial_day + timedelta(days=rng.randint(6, 20)), rng))
    if rng.random() > plan.activation or not usage:
        return True, events
    first_use = trial_day + timedelta(days=rng.randint(0, 12))
    intensity = plan.intensity * rng.uniform(0.5, 1.5)
    day = first_use
    rated = False
    while day <= now.date():
        if day.day == 1 and rng.random() < plan.churn:
            break
        if day.weekday() < 6 and rng.random() < intensity:
            for _ in range(1 if rng.random() < 0.7 else 2):
                when = _at(day, rng, 6, 20)
                for _ in range(rng.randint(1, 3)):
                    add(rng.choice(usage), when)
                    when += timedelta(minutes=rng.randint(1, 12))
        if not rated and (day - first_use).days >= 14 and rng.random() < 0.03:
            rating = max(1, min(5, round(rng.gauss(plan.rating, 0.9))))
            add(EventName.RATING_SUBMITTED, _at(day, rng), rating=rating)
            rated = True
        day += timedelta(days=1)
    return True, events


def _quarters(start: date, today: date) -> list[tuple[str, date, date]]:
    out, first = [], date(start.year, (start.month - 1) // 3 * 3 + 1, 1)
    while first <= today:
        q = (first.month - 1) // 3 + 1
        nxt = date(first.year + (first.month + 2) // 12, (first.month + 2) % 12 + 1, 1)
        out.append((f"Q{q} {first.year} pulse", first, nxt - timedelta(days=1)))
        first = nxt
    return out


def _nps(plan: ProductPlan, product: Product, users: list[str], start: date, now: datetime, log) -> int:
    owner = product.owner or User.objects.filter(role="admin").first()
    if owner is None:
        return 0
    sent = 0
    for name, opens, closes in _quarters(start + timedelta(days=30 * plan.launch_month), now.date()):
        campaign = NpsCampaign.objects.filter(product=product, name=name).first()
        if campaign is None:
            campaign = nps_campaign_create(actor=owner, product=product, name=name, opens_on=opens, closes_on=closes)
        rng = random.Random(f"nps:{plan.slug}:{name}")
        answered = rng.sample(users, k=min(len(users), rng.randint(25, 70)))
        records = []
        for user in answered:
            when = _at(opens + timedelta(days=rng.randint(0, (closes - opens).days)), rng, 8, 20)
            if when > now:
                continue
            score = max(0, min(10, round(rng.gauss(7.4 + plan.nps_bias, 2.1))))
            bucket = "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
            comment = rng.choice(COMMENTS[bucket]) if rng.random() < 0.35 else ""
            records.append(
                {
                    "campaign": campaign.slug,
                    "user_id": user,
                    "score": score,
                    "comment": comment,
                    "submitted_at": when.isoformat(),
                }
            )
        if records:
            result = nps_responses_ingest(records, now=now)
            if result.errors:
                log(f"NPS {campaign.slug}: {len(result.errors)} responses refused, e.g. {result.errors[0].message}")
            sent += result.accepted
    return sent


def _targets(now: datetime, log) -> None:
    """This month's targets, set the way a product manager would: last month's figure plus a stretch."""
    from apps.core.periods import month_of

    from .selectors import period_values, resolve_scope

    month = month_of(now.date())
    stretch = {
        "price-forecasting": [("mau", "1.05"), ("demos", "1.10"), ("trial_starts", "1.0"), ("avg_rating", "+0.2")],
        "real-time-promotions": [("mau", "1.08"), ("trial_starts", "1.15"), ("activation_rate", "+5")],
        "smart-cart": [("mau", "1.02"), ("trainings", "0.9"), ("avg_rating", "+0.1")],
        "shelf-vision": [("mau", "1.10"), ("demos", "1.0"), ("nps", "+5")],
    }
    count = 0
    for product in Product.objects.filter(slug__in=stretch).select_related("owner"):
        actor = product.owner or User.objects.filter(role="admin").first()
        last = period_values(resolve_scope(product=product.slug), [month.previous()], as_of=now)[0].values
        for kpi, change in stretch[product.slug]:
            base = last.get(kpi)
            if actor is None or base is None:
                continue
            value = base + Decimal(change) if change.startswith("+") else base * Decimal(change)
            if kpi == "avg_rating":
                value = min(value, Decimal(5))
            value = value.quantize(Decimal("0.1") if kpi in {"avg_rating", "activation_rate", "nps"} else Decimal(1))
            adoption_target_set(actor=actor, kpi=kpi, product=product, month=month.start, value=value)
            count += 1
    log(f"{count} targets for {month.label}, from last month's figures")


def load(*, log) -> None:
    now = timezone.now()
    products = {p.slug: p for p in Product.objects.filter(slug__in=[p.slug for p in PLANS])}
    stores = list(Location.objects.filter(kind=Location.Kind.STORE).order_by("code").values_list("code", flat=True))
    if not products or not stores:
        log("skipped: the demo catalog (products, stores) is missing")
        return
    # The story starts a year before the first run and stays put on later runs.
    first_day = Event.objects.filter(product__in=products.values()).aggregate(first=Min("day"))["first"]
    today = now.date()
    start = (first_day or date(today.year - 1, today.month, 1)).replace(day=1)
    employees = _employees(stores, random.Random("employees"))
    accepted = duplicates = nps = 0
    for plan in PLANS:
        product = products.get(plan.slug)
        if product is None:
            continue
        users, batch = [], []
        for emp in employees:
            reached, journey = _journey(plan, product, emp, start, now)
            if reached:
                users.append(emp[0])
            batch += journey
            while len(batch) >= BATCH:
                result = events_ingest(batch[:BATCH], now=now, schedule_refresh=False)
                if result.errors:
                    raise RuntimeError(f"demo events refused: {result.errors[0].as_dict()}")
                accepted, duplicates = accepted + result.accepted, duplicates + result.duplicates
                batch = batch[BATCH:]
        if batch:
            result = events_ingest(batch, now=now, schedule_refresh=False)
            accepted, duplicates = accepted + result.accepted, duplicates + result.duplicates
        rollups_refresh(product_id=product.pk, now=now)
        nps += _nps(plan, product, users, start, now, log)
    if connection.vendor == "postgresql":
        # A year arrived at once: give the planner statistics now rather than when autovacuum next looks.
        with connection.cursor() as cursor:
            for model in (Event, UserDay, TrialEvent):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
    _targets(now, log)
    log(f"events since {start:%B %Y}: {accepted:,} new, {duplicates:,} already loaded; {nps:,} NPS responses")
