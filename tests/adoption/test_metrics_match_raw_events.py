"""Every adoption metric equals a plain-Python computation from the raw events.

The data set: three products, 60 employees (most in several products, a few working at two stores),
five months of trials, usage, demos, training and ratings; it is sent through the event API in
batches with 15 % re-sent duplicates, and a tenth of the events arrive late, after the rollup was
already built. The expected values below are computed from the unique events only, with the
definitions written out in apps/adoption/metrics.py, never with the code under test. NPS answers
arrive by API in two calls, the second repeating some people's answers (the first answer stands).
"""

import itertools
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from apps.adoption import selectors
from apps.adoption.services import nps_campaign_create, rollups_refresh_all
from apps.core.periods import Period, month_of

from .factories import STORES, make_catalog, write_token

pytestmark = pytest.mark.django_db

USAGE = {"alpha": {"alpha_used"}, "beta": {"beta_opened", "beta_done"}, "gamma": {"gamma_used"}}
START, END = date(2025, 1, 1), date(2025, 6, 1)
WINDOW = timedelta(days=30)
MONTHS = [month_of(date(2025, m, 1)) for m in range(1, 6)]
ROLES = ["clerk", "manager", "analyst"]


@dataclass(frozen=True)
class E:
    event_id: str
    product: str
    user: str
    name: str
    ts: datetime
    store: str
    role: str
    rating: int | None = None

    @property
    def region(self) -> str:
        return STORES[self.store]

    @property
    def usage(self) -> bool:
        return self.name in USAGE[self.product]

    def payload(self) -> dict:
        props = {"location": self.store, "role": self.role}
        if self.rating is not None:
            props["rating"] = self.rating
        return {
            "event_id": self.event_id,
            "product": self.product,
            "user_id": self.user,
            "event": self.name,
            "timestamp": self.ts.isoformat(),
            "properties": props,
        }


def _at(rng: random.Random, day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
        seconds=rng.randrange(6 * 3600, 21 * 3600), microseconds=rng.choice([0, rng.randrange(1_000_000)])
    )


def generate(seed: int = 7) -> list[E]:
    rng = random.Random(seed)
    events: list[E] = []

    def add(product, user, name, ts, store, role, rating=None):
        if ts.date() < END:
            events.append(
                E(str(uuid.UUID(int=rng.getrandbits(128), version=4)), product, user, name, ts, store, role, rating)
            )

    stores = list(STORES)
    for i in range(60):
        user = f"emp-{i:03d}"
        home, role = rng.choice(stores), rng.choice(ROLES)
        second_store = rng.choice(stores) if i % 9 == 0 else None
        for product in USAGE:
            if rng.random() > 0.65:
                continue
            requested = _at(rng, START + timedelta(days=rng.randrange(0, 120)))
            if rng.random() < 0.4:
                add(product, user, "demo_attended", requested - timedelta(days=rng.randrange(1, 6)), home, role)
            add(product, user, "trial_requested", requested, home, role)
            if rng.random() < 0.2:  # a repeated request: the funnel counts the first
                add(product, user, "trial_requested", requested + timedelta(days=rng.randrange(1, 20)), home, role)
            started = None
            if rng.random() < 0.8:
                started = requested + timedelta(days=rng.randrange(0, 40), seconds=rng.randrange(0, 86_400))
                add(product, user, "trial_started", started, home, role)
                if rng.random() < 0.5:
                    offset = timedelta(days=rng.randrange(-3, 28), seconds=rng.randrange(0, 86_400))
                    add(product, user, "second_trial_requested", started + offset, home, role)
                if rng.random() < 0.5:
                    add(product, user, "training_completed", started + timedelta(days=rng.randrange(1, 10)), home, role)
            first_use = (started or requested) + timedelta(days=rng.randrange(-8, 35))
            intensity = rng.choice([0.0, 0.1, 0.3, 0.6])
            day = max(START, first_use.date())
            while day < END and intensity:
                if rng.random() < intensity:
                    store = second_store if second_store and rng.random() < 0.3 else home
                    ts = _at(rng, day)
                    for _ in range(rng.randint(1, 4)):
                        add(product, user, rng.choice(sorted(USAGE[product])), ts, store, role)
                        ts += timedelta(minutes=rng.choice([2, 10, 29, 30, 31, 45, 90]))
                if rng.random() < 0.01:
                    add(product, user, "rating_submitted", _at(rng, day), home, role, rating=rng.randint(1, 5))
                day += timedelta(days=1)
    # Funnel and activation window edges: exactly 30 days is inside, one second more is not.
    t = datetime(2025, 2, 10, 12, 0, tzinfo=UTC)
    add("alpha", "edge-in", "trial_requested", t, "store-0001", "clerk")
    add("alpha", "edge-in", "trial_started", t + WINDOW, "store-0001", "clerk")
    add("alpha", "edge-out", "trial_requested", t, "store-0001", "clerk")
    add("alpha", "edge-out", "trial_started", t + WINDOW + timedelta(seconds=1), "store-0001", "clerk")
    add("alpha", "edge-act", "trial_started", t, "store-0002", "clerk")
    add("alpha", "edge-act", "alpha_used", t + WINDOW, "store-0002", "clerk")
    # Someone who works at two stores in March counts at both.
    add("beta", "two-stores", "beta_done", datetime(2025, 3, 3, 9, tzinfo=UTC), "store-0001", "clerk")
    add("beta", "two-stores", "beta_done", datetime(2025, 3, 4, 9, tzinfo=UTC), "store-0003", "clerk")
    return events


# --- Independent computations ------------------------------------------------------------------


def _match(e: E, products, region=None, role=None) -> bool:
    return e.product in products and (region is None or e.region == region) and (role is None or e.role == role)


def mau(events, period, products=USAGE, region=None, role=None) -> int:
    return len(
        {
            e.user
            for e in events
            if e.usage and _match(e, products, region, role) and period.start <= e.ts.date() < period.end
        }
    )


def people(events, name, period, products=USAGE) -> int:
    return len(
        {
            e.user
            for e in events
            if e.name == name and e.product in products and period.start <= e.ts.date() < period.end
        }
    )


def dau_by_day(events, products=USAGE) -> dict[date, set[str]]:
    days = defaultdict(set)
    for e in events:
        if e.usage and e.product in products:
            days[e.ts.date()].add(e.user)
    return days


def rolling_mau(events, day: date, products=USAGE) -> int:
    return len(
        {e.user for e in events if e.usage and e.product in products and day - timedelta(days=29) <= e.ts.date() <= day}
    )


def funnel(events, product, period) -> list[int]:
    by_user = defaultdict(list)
    for e in events:
        if e.product == product:
            by_user[e.user].append(e)
    counts = [0, 0, 0, 0]
    for evs in by_user.values():
        requests = sorted(e.ts for e in evs if e.name == "trial_requested")
        if not requests or not period.start_dt <= requests[0] < period.end_dt:
            continue
        t0 = requests[0]
        counts[0] += 1
        starts = sorted(e.ts for e in evs if e.name == "trial_started" and t0 <= e.ts <= t0 + WINDOW)
        if not starts:
            continue
        counts[1] += 1
        seconds = sorted(e.ts for e in evs if e.name == "second_trial_requested" and starts[0] <= e.ts <= t0 + WINDOW)
        if not seconds:
            continue
        counts[2] += 1
        if any(e.usage and seconds[0] <= e.ts <= t0 + WINDOW for e in evs):
            counts[3] += 1
    return counts


def activation(events, period, products=USAGE) -> tuple[int, int]:
    starters = activated = 0
    for product in products:
        by_user = defaultdict(list)
        for e in events:
            if e.product == product:
                by_user[e.user].append(e)
        for evs in by_user.values():
            starts = sorted(e.ts for e in evs if e.name == "trial_started")
            if not starts or not period.start_dt <= starts[0] < period.end_dt:
                continue
            starters += 1
            activated += any(e.usage and starts[0] <= e.ts <= starts[0] + WINDOW for e in evs)
    return starters, activated


def sessions(events, period, products=USAGE) -> int:
    groups = defaultdict(list)
    for e in events:
        if e.usage and e.product in products and period.start <= e.ts.date() < period.end:
            groups[(e.product, e.user, e.ts.date(), e.store, e.role)].append(e.ts)
    total = 0
    for times in groups.values():
        times.sort()
        total += 1 + sum(1 for a, b in itertools.pairwise(times) if (b - a).total_seconds() > 1800)
    return total


def retention(events, products=USAGE) -> dict[tuple[date, int], int]:
    months = defaultdict(set)
    for e in events:
        if e.usage and e.product in products:
            months[e.user].add((e.ts.year, e.ts.month))
    out = defaultdict(int)
    for active in months.values():
        first = min(active)
        for y, m in active:
            out[(date(*first, 1), (y - first[0]) * 12 + m - first[1])] += 1
    return out


# --- The test ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def events() -> list[E]:
    return generate()


@pytest.fixture(scope="module")
def loaded(django_db_setup, django_db_blocker, events):
    """The events sent through the API with duplicates and late arrivals, rollups refreshed as a worker would.

    Loaded once for the module inside a transaction that is rolled back afterwards; each test runs in
    a savepoint within it.
    """
    with django_db_blocker.unblock(), transaction.atomic():
        catalog = _load(events)
        yield catalog
        transaction.set_rollback(True)


def _load(events):
    from django.test import Client

    client = Client()
    catalog = make_catalog()
    key = write_token(catalog["owner"])
    rng = random.Random(11)
    late = {e.event_id for e in rng.sample(events, len(events) // 10)}
    on_time = [e for e in events if e.event_id not in late]
    resent = rng.sample(on_time, len(on_time) * 15 // 100)

    def send(batch):
        for i in range(0, len(batch), 1000):
            payload = {"events": [e.payload() for e in batch[i : i + 1000]]}
            response = client.post(
                "/api/v1/events/batch/", payload, content_type="application/json", HTTP_AUTHORIZATION=f"Token {key}"
            )
            assert response.status_code == 200, response.content[:500]

    send(on_time + resent)
    rollups_refresh_all()
    send([e for e in events if e.event_id in late] + rng.sample(on_time, 50))
    rollups_refresh_all()

    # NPS: two campaigns answered by API; some people answer twice (the first answer stands).
    campaigns = {
        p: nps_campaign_create(actor=catalog["owner"], product=catalog["products"][p], name="Spring", opens_on=START)
        for p in ("alpha", "beta")
    }
    first, again = [], []
    for i, (product, user, score, ts) in enumerate(nps_answers()):
        row = {"campaign": campaigns[product].slug, "user_id": user, "score": score, "submitted_at": ts.isoformat()}
        (again if i % 7 == 3 else first).append(row)
    for rows in (first, again):
        response = client.post(
            "/api/v1/nps/responses/",
            {"responses": rows},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {key}",
        )
        assert response.status_code == 200, response.content[:500]
    return catalog


def nps_answers() -> list[tuple[str, str, int, datetime]]:
    """(product, person, score, when): 150 answers, some people answering the same campaign twice."""
    rng = random.Random(5)
    answers = []
    for _ in range(150):
        product = rng.choice(["alpha", "beta"])
        day = START + timedelta(days=rng.randrange(0, (END - START).days))
        answers.append((product, f"emp-{rng.randrange(40):03d}", rng.randint(0, 10), _at(rng, day)))
    return answers


def nps_expected(period, products=("alpha", "beta")) -> tuple[int, int, int]:
    """(promoters, passives, detractors) of the answers that stand (the first per person and campaign)."""
    first, again = [], []
    for i, answer in enumerate(nps_answers()):
        (again if i % 7 == 3 else first).append(answer)
    standing = {}
    for product, user, score, ts in first + again:
        standing.setdefault((product, user), (score, ts))
    scores = [s for (p, _), (s, ts) in standing.items() if p in products and period.start <= ts.date() < period.end]
    return sum(s >= 9 for s in scores), sum(7 <= s <= 8 for s in scores), sum(s <= 6 for s in scores)


AS_OF = datetime(2025, 7, 1, tzinfo=UTC)


def _values(scope, period):
    return selectors.period_values(scope, [period], as_of=AS_OF)[0]


def test_duplicates_are_stored_once_and_late_events_reach_the_rollup(loaded, events):
    from django.db.models import Sum

    from apps.adoption.models import Event, RollupMark, UserDay

    assert Event.objects.count() == len(events)
    assert UserDay.objects.aggregate(n=Sum("events"))["n"] == len(events)
    assert not RollupMark.objects.exists()


def test_monthly_active_users_match(loaded, events):
    scopes = [
        (selectors.resolve_scope(), {}),
        *((selectors.resolve_scope(product=p), {"products": {p}}) for p in USAGE),
        (selectors.resolve_scope(location="region-north"), {"region": "region-north"}),
        (selectors.resolve_scope(role="manager"), {"role": "manager"}),
        (
            selectors.resolve_scope(product="alpha", location="region-south"),
            {"products": {"alpha"}, "region": "region-south"},
        ),
    ]
    for scope, cut in scopes:
        series = selectors.period_values(scope, MONTHS, as_of=AS_OF)
        assert [pv.values["mau"] for pv in series] == [mau(events, p, **cut) for p in MONTHS], cut


def test_counts_ratings_sessions_and_stickiness_match(loaded, events):
    period = MONTHS[2]
    v = _values(selectors.resolve_scope(), period).values
    assert v["trial_requests"] == people(events, "trial_requested", period)
    assert v["trial_starts"] == people(events, "trial_started", period)
    assert v["second_trials"] == people(events, "second_trial_requested", period)
    assert v["demos"] == people(events, "demo_attended", period)
    assert v["trainings"] == people(events, "training_completed", period)
    ratings = [e.rating for e in events if e.name == "rating_submitted" and period.start <= e.ts.date() < period.end]
    assert ratings, "the data set has ratings in the month"
    assert v["avg_rating"] == Decimal(sum(ratings)) / Decimal(len(ratings))
    monthly = mau(events, period)
    assert v["sessions_per_user"] == Decimal(sessions(events, period)) / monthly
    days = dau_by_day(events)
    active_days = sum(len(days[period.start + timedelta(days=i)]) for i in range(period.days))
    assert v["usage_frequency"] == Decimal(active_days) / monthly
    assert v["dau"] == Decimal(active_days) / period.days
    assert v["stickiness"] == Decimal(active_days) / period.days * 100 / monthly


def test_daily_and_rolling_30_day_active_users_match(loaded, events):
    period = MONTHS[3]
    points = selectors.daily_trend(selectors.resolve_scope(), period, as_of=AS_OF)
    days = dau_by_day(events)
    assert [p.day for p in points] == [period.start + timedelta(days=i) for i in range(period.days)]
    for p in points:
        assert p.dau == len(days[p.day]), p.day
        assert p.mau_30 == rolling_mau(events, p.day), p.day
    beta = selectors.daily_trend(selectors.resolve_scope(product="beta"), period, as_of=AS_OF)
    assert [p.mau_30 for p in beta] == [rolling_mau(events, p.day, {"beta"}) for p in beta]


@pytest.mark.parametrize("period", MONTHS[:4:2], ids=lambda p: p.key)
def test_trial_funnel_matches(loaded, events, period):
    total = [0, 0, 0, 0]
    for product in USAGE:
        expected = funnel(events, product, period)
        steps = selectors.trial_funnel(selectors.resolve_scope(product=product), period)
        assert [s.users for s in steps] == expected, product
        total = [a + b for a, b in zip(total, expected, strict=True)]
    steps = selectors.trial_funnel(selectors.resolve_scope(), period)
    assert [s.users for s in steps] == total
    for before, step in itertools.pairwise(steps):
        if before.users:
            assert step.step_conversion == (Decimal(step.users) * 100 / before.users).quantize(Decimal("0.1"))


def test_the_funnel_window_includes_exactly_30_days(loaded, events):
    feb = MONTHS[1]
    ids = {"edge-in", "edge-out"}
    edge_events = [e for e in events if e.user in ids]
    assert funnel(edge_events, "alpha", feb)[:2] == [2, 1]


def test_activation_matches(loaded, events):
    series = selectors.period_values(selectors.resolve_scope(), MONTHS, as_of=AS_OF)
    for period, v in zip(MONTHS, series, strict=True):
        starters, activated = activation(events, period)
        assert (v.starters, v.values["activations"]) == (starters, activated), period.key
        if starters:
            assert v.values["activation_rate"] == Decimal(activated) * 100 / starters
    feb = series[1]
    edge = activation([e for e in events if e.user == "edge-act"], MONTHS[1])
    assert edge == (1, 1), "usage exactly 30 days after the trial start counts"
    assert feb.starters >= 1


def test_retention_matches(loaded, events):
    table = selectors.retention_table(selectors.resolve_scope(), MONTHS[-1], as_of=AS_OF, months=5)
    expected = retention(events)
    assert [row.month for row in table.rows] == [p.start for p in MONTHS]
    for row in table.rows:
        assert row.size == expected.get((row.month, 0), 0)
        for k, n in enumerate(row.retained):
            if n is not None:
                assert n == expected.get((row.month, k), 0), (row.month, k)
    gamma = selectors.retention_table(selectors.resolve_scope(product="gamma"), MONTHS[-1], as_of=AS_OF, months=5)
    expected_gamma = retention(events, {"gamma"})
    assert [r.size for r in gamma.rows] == [expected_gamma.get((p.start, 0), 0) for p in MONTHS]


def test_store_region_and_role_tables_match(loaded, events):
    period = MONTHS[2]
    scope = selectors.resolve_scope()
    regions = {
        r["region_id"]: r["mau"] for r in selectors.breakdown_rows(scope, period, by="region", sort="name", as_of=AS_OF)
    }
    for code, location in loaded["regions"].items():
        assert regions.get(location.pk, 0) == mau(events, period, region=code)
    stores = {
        r["location_id"]: r["mau"]
        for r in selectors.breakdown_rows(scope, period, by="store", sort="-mau", as_of=AS_OF)
    }
    for code, location in loaded["stores"].items():
        expected = len(
            {e.user for e in events if e.usage and e.store == code and period.start <= e.ts.date() < period.end}
        )
        assert stores.get(location.pk, 0) == expected
    # Users who work at two stores count in both rows: the rows add up to more than the total.
    assert sum(stores.values()) > mau(events, period)
    roles = {r["role"]: r["mau"] for r in selectors.breakdown_rows(scope, period, by="role", sort="-mau", as_of=AS_OF)}
    assert roles == {role: mau(events, period, role=role) for role in ROLES if mau(events, period, role=role)}
    ordered = [r["mau"] for r in selectors.breakdown_rows(scope, period, by="store", sort="-mau", as_of=AS_OF)]
    assert ordered == sorted(ordered, reverse=True)


def test_the_api_and_csv_give_the_page_numbers(loaded, events, client):
    client.force_login(loaded["owner"])
    period = MONTHS[2]
    summary = client.get(f"/api/v1/adoption/summary/?period={period.key}&product=beta").json()
    by_key = {row["key"]: row for row in summary}
    assert by_key["mau"]["value"] == str(mau(events, period, {"beta"}))
    assert by_key["mau"]["previous"] == str(mau(events, MONTHS[1], {"beta"}))
    assert by_key["mau"]["sparkline"][-2:] == [
        str(mau(events, MONTHS[1], {"beta"})),
        str(mau(events, period, {"beta"})),
    ]
    funnel_rows = client.get(f"/api/v1/adoption/funnel/?period={period.key}&product=alpha").json()
    assert [r["users"] for r in funnel_rows] == funnel(events, "alpha", period)
    csv_text = client.get(f"/adoption/export/funnel.csv?period={period.key}&product=alpha").content.decode()
    assert [int(line.split(",")[2]) for line in csv_text.strip().splitlines()[1:]] == funnel(events, "alpha", period)
    page = client.get(f"/adoption/?period={period.key}&product=beta").content.decode()
    assert 'data-kpi="mau"' in page


def test_nps_matches(loaded, client):
    from apps.adoption.models import NpsResponse

    assert NpsResponse.objects.count() == len({(p, u) for p, u, _, _ in nps_answers()})
    everything = selectors.period_values(selectors.resolve_scope(), MONTHS, as_of=AS_OF)
    alpha = selectors.period_values(selectors.resolve_scope(product="alpha"), MONTHS, as_of=AS_OF)
    for period, all_products, only_alpha in zip(MONTHS, everything, alpha, strict=True):
        for values, products in ((all_products, ("alpha", "beta")), (only_alpha, ("alpha",))):
            promoters, passives, detractors = nps_expected(period, products)
            n = promoters + passives + detractors
            assert (values.nps.promoters, values.nps.passives, values.nps.detractors) == (
                promoters,
                passives,
                detractors,
            )
            expected = (Decimal(100 * (promoters - detractors)) / n).quantize(Decimal("0.1"), ROUND_HALF_UP)
            assert values.values["nps"] == expected, (period.key, products)
    client.force_login(loaded["owner"])
    api = client.get(f"/api/v1/adoption/nps/?period={MONTHS[1].key}&product=beta").json()
    p, pa, d = nps_expected(MONTHS[1], ("beta",))
    assert (api["n"], api["promoters"], api["detractors"]) == (p + pa + d, p, d)


def test_headline_kpi_is_the_tile_value(loaded, events):
    from apps.adoption.kpis import HEADLINE_KPIS
    from apps.kpis.registry import KpiFilters

    mau_kpi = next(d for d in HEADLINE_KPIS if d.key == "mau")
    period = MONTHS[4]
    assert mau_kpi.compute(period, KpiFilters(product="alpha")).value == mau(events, period, {"alpha"})
    assert mau_kpi.compute(period, KpiFilters(location="region-south")).value == mau(
        events, period, region="region-south"
    )
    assert mau_kpi.compute(Period("custom", date(2025, 3, 10), date(2025, 4, 20)), KpiFilters()).value == len(
        {e.user for e in events if e.usage and date(2025, 3, 10) <= e.ts.date() < date(2025, 4, 20)}
    )
    assert timezone.now() > AS_OF
