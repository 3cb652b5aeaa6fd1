"""Reads of the adoption area: every metric is computed in the database, from the daily rollups
(:class:`~apps.adoption.models.UserDay`, :class:`~apps.adoption.models.TrialEvent`) and, where a
funnel window starts or ends inside a day, from that day's events. Pages, API, CSV exports and the
headline KPIs all call these functions.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Concat, NullIf, TruncDate

from apps.catalog.models import Location, Product
from apps.core.exceptions import ApplicationError
from apps.core.periods import Period
from apps.kpis.models import Target
from apps.kpis.registry import Direction, KpiFilters, KpiValue
from apps.kpis.targets import Accumulation, Rag, TargetStatus, elapsed_days, evaluate

from .metrics import ACTIVATION_WINDOW_DAYS, METRICS, TILE_KEYS, Metric
from .models import (
    Event,
    EventName,
    NpsCampaign,
    NpsResponse,
    TrialEvent,
    UserDay,
    day_number,
    month_from_number,
    month_number,
)
from .nps import NpsScore

ACTIVATION_WINDOW = timedelta(days=ACTIVATION_WINDOW_DAYS)
ROLLING_DAYS = 30
HISTORY = 12  # periods before the selected one on sparklines and trends
PACE_DAYS = 7  # a cumulative KPI's projection uses the increase over the last week
ROLLUP_KEYS = {
    "mau",
    "dau",
    "stickiness",
    "trial_requests",
    "trial_starts",
    "second_trials",
    "demos",
    "trainings",
    "avg_rating",
    "sessions_per_user",
    "usage_frequency",
}
ACTIVATION_KEYS = {"activations", "activation_rate"}


# --- Scope ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What the figures cover: some products, optionally one location (store or region) and one role."""

    products: tuple[Product, ...]
    product: Product | None = None
    location: Location | None = None
    role: str = ""

    @property
    def product_ids(self) -> list[int]:
        return [p.pk for p in self.products]

    @property
    def sliced(self) -> bool:
        """Cut by location or role: monthly targets (set per product) do not apply to a slice."""
        return self.location is not None or bool(self.role)

    def _slice_q(self) -> Q:
        q = Q(product_id=self.products[0].pk) if len(self.products) == 1 else Q(product_id__in=self.product_ids)
        if self.location is not None:
            if self.location.kind == Location.Kind.REGION:
                q &= Q(region_id=self.location.pk)
            else:
                q &= Q(location_id=self.location.pk)
        if self.role:
            q &= Q(role=self.role)
        return q

    def userday_q(self) -> Q:
        return self._slice_q()

    def event_q(self) -> Q:
        return self._slice_q()

    def usage_q(self) -> Q:
        """Events that count as usage, for a one-product scope (see :meth:`per_product`)."""
        if len(self.products) != 1:
            raise ValueError("usage_q is defined per product: iterate over Scope.per_product()")
        return Q(name__in=self.products[0].usage_event_names or [])

    def per_product(self) -> list["Scope"]:
        """One scope per product, same slice. Event queries run per product: each product has its own
        usage events, and an equality on the product keeps the correlated look-ups on their index."""
        return [Scope(products=(p,), product=p, location=self.location, role=self.role) for p in self.products]

    def as_query(self) -> dict[str, str]:
        """The filters as the pages' URL parameters (for links, htmx and CSV exports)."""
        params = {}
        if self.product is not None:
            params["product"] = self.product.slug
        if self.location is not None:
            params["region" if self.location.kind == Location.Kind.REGION else "store"] = self.location.code
        if self.role:
            params["role"] = self.role
        return params


def resolve_scope(*, product: str | None = None, location: str | None = None, role: str | None = None) -> Scope:
    """Filters from a request or KpiFilters to a Scope; unknown values raise ApplicationError naming them."""
    products = tuple(Product.objects.order_by("name"))
    chosen = None
    if product:
        chosen = next((p for p in products if p.slug == product), None)
        if chosen is None:
            raise ApplicationError(f"unknown product {product!r}")
    loc = None
    if location:
        loc = Location.objects.filter(code=location).first()
        if loc is None:
            raise ApplicationError(f"unknown location {location!r}")
    return Scope(products=(chosen,) if chosen else products, product=chosen, location=loc, role=(role or "").strip())


def scope_from_filters(filters: KpiFilters, role: str | None = None) -> Scope:
    return resolve_scope(product=filters.product, location=filters.location, role=role)


def role_choices(scope: Scope) -> list[str]:
    return list(
        UserDay.objects.filter(product_id__in=[p.pk for p in scope.products])
        .exclude(role="")
        .values_list("role", flat=True)
        .distinct()
        .order_by("role")
    )


# --- Per-period values ----------------------------------------------------------------------------


def _bucket(field_name: str, periods: list[Period], *, datetimes: bool = False) -> Case:
    """Which of the (contiguous, non-overlapping) ``periods`` a row falls in, as 0..n-1 (-1: none)."""
    whens = [
        When(
            **{
                f"{field_name}__gte": p.start_dt if datetimes else p.start,
                f"{field_name}__lt": p.end_dt if datetimes else p.end,
            },
            then=Value(i),
        )
        for i, p in enumerate(periods)
    ]
    return Case(*whens, default=Value(-1), output_field=IntegerField())


def days_so_far(period: Period, as_of: datetime) -> int:
    """Days of the period up to and including ``as_of``'s day."""
    last = min(period.end, as_of.date() + timedelta(days=1))
    return max(0, (last - period.start).days)


def _active_day_key():
    # One (user, day) pair: counting these distinct gives active user-days even when a user has rows
    # for two stores on one day.
    return Concat("user_id", Value("|"), Cast("day_number", CharField()), output_field=CharField())


def _ratio(numerator: Decimal | int | None, denominator: Decimal | int | None, scale: int = 1) -> Decimal | None:
    if numerator is None or not denominator:
        return None
    return Decimal(numerator) * scale / Decimal(denominator)


# The rollup aggregates each metric is computed from.
ROLLUP_INPUTS = {
    "mau": {"mau"},
    "dau": {"active_days"},
    "stickiness": {"active_days", "mau"},
    "trial_requests": {"trial_requests"},
    "trial_starts": {"trial_starts"},
    "second_trials": {"second_trials"},
    "demos": {"demos"},
    "trainings": {"trainings"},
    "avg_rating": {"rating_sum", "ratings"},
    "sessions_per_user": {"sessions", "mau"},
    "usage_frequency": {"active_days", "mau"},
}


def _rollup_aggregates() -> dict:
    active = Q(usage_events__gt=0)
    return {
        "mau": Count("user_id", distinct=True, filter=active),
        "active_days": Count(_active_day_key(), distinct=True, filter=active),
        "trial_requests": Count("user_id", distinct=True, filter=Q(trial_requests__gt=0)),
        "trial_starts": Count("user_id", distinct=True, filter=Q(trial_starts__gt=0)),
        "second_trials": Count("user_id", distinct=True, filter=Q(second_trial_requests__gt=0)),
        "demos": Count("user_id", distinct=True, filter=Q(demos__gt=0)),
        "trainings": Count("user_id", distinct=True, filter=Q(trainings__gt=0)),
        "sessions": Sum("sessions"),
        "ratings": Sum("ratings"),
        "rating_sum": Sum("rating_sum"),
    }


def _rollup_values(scope: Scope, periods: list[Period], keys=None) -> dict[int, dict]:
    """The rollup aggregates per period; with ``keys``, only those the metrics asked for need (a distinct
    count per aggregate is the costly part)."""
    wanted = set().union(*(ROLLUP_INPUTS[k] for k in keys if k in ROLLUP_INPUTS)) if keys else None
    aggregates = {name: agg for name, agg in _rollup_aggregates().items() if wanted is None or name in wanted}
    rows = (
        UserDay.objects.filter(scope.userday_q(), day__gte=periods[0].start, day__lt=periods[-1].end)
        .annotate(bucket=_bucket("day", periods))
        .values("bucket")
        .annotate(**aggregates)
        .order_by()
    )
    return {row["bucket"]: row for row in rows}


def _first_occurrences(scope: Scope, name: str) -> QuerySet[TrialEvent]:
    """Each user's first ``name`` trial event of a one-product scope (ties broken by row id): one row each."""
    same = TrialEvent.objects.filter(scope.event_q(), name=name)
    first = same.filter(user_id=OuterRef("user_id")).order_by("timestamp", "pk").values("pk")[:1]
    return same.filter(pk=Subquery(first))


def _used_between(scope: Scope, start_ref, end_ref) -> ExpressionWrapper:
    """Whether the outer row's user has a usage event between two timestamps (inclusive), for a
    one-product scope.

    Whole days strictly inside the window come from the daily rollup; the first and last day of the
    window are checked on the events themselves, so the result is exact to the microsecond.
    """
    start_ref = ExpressionWrapper(start_ref, output_field=DateTimeField())
    end_ref = ExpressionWrapper(end_ref, output_field=DateTimeField())
    start_day, end_day = TruncDate(start_ref), TruncDate(end_ref)
    inside = Exists(
        UserDay.objects.filter(
            scope.userday_q(), user_id=OuterRef("user_id"), usage_events__gt=0, day__gt=start_day, day__lt=end_day
        )
    )

    def on_edge(day):
        return Exists(
            Event.objects.filter(
                scope.event_q(),
                scope.usage_q(),
                day=day,
                user_id=OuterRef("user_id"),
                timestamp__gte=start_ref,
                timestamp__lte=end_ref,
            )
        )

    return ExpressionWrapper(Q(inside) | Q(on_edge(start_day)) | Q(on_edge(end_day)), output_field=BooleanField())


def _activation_values(scope: Scope, periods: list[Period]) -> dict[int, dict]:
    """First trial starts and activations per period, summed over the products (one query each)."""
    window_end = OuterRef("timestamp") + ACTIVATION_WINDOW
    out: dict[int, dict] = {}
    for one in scope.per_product():
        rows = (
            _first_occurrences(one, EventName.TRIAL_STARTED)
            .filter(timestamp__gte=periods[0].start_dt, timestamp__lt=periods[-1].end_dt)
            .annotate(bucket=_bucket("timestamp", periods, datetimes=True))
            .annotate(activated=_used_between(one, OuterRef("timestamp"), window_end))
            .values("bucket")
            .annotate(starters=Count("pk"), activations=Count("pk", filter=Q(activated=True)))
            .order_by()
        )
        for row in rows:
            total = out.setdefault(row["bucket"], {"starters": 0, "activations": 0})
            total["starters"] += row["starters"]
            total["activations"] += row["activations"]
    return out


def _nps_counts(scope: Scope, periods: list[Period]) -> dict[int, NpsScore]:
    rows = (
        NpsResponse.objects.filter(
            product_id__in=scope.product_ids,
            submitted_at__gte=periods[0].start_dt,
            submitted_at__lt=periods[-1].end_dt,
        )
        .annotate(bucket=_bucket("submitted_at", periods, datetimes=True))
        .values("bucket")
        .annotate(
            promoters=Count("pk", filter=Q(score__gte=9)),
            passives=Count("pk", filter=Q(score__gte=7, score__lte=8)),
            detractors=Count("pk", filter=Q(score__lte=6)),
        )
        .order_by()
    )
    return {r["bucket"]: NpsScore(r["promoters"], r["passives"], r["detractors"]) for r in rows}


@dataclass
class PeriodValues:
    period: Period
    values: dict[str, Decimal | None]
    nps: NpsScore
    starters: int  # first trial starts (the activation rate's denominator)
    days: int  # days of the period so far


def period_values(scope: Scope, periods: list[Period], *, as_of: datetime, keys=None) -> list[PeriodValues]:
    """All metrics for each of ``periods`` (contiguous, oldest first): at most three queries."""
    keys = set(keys or METRICS)
    rollup = _rollup_values(scope, periods, keys) if keys & ROLLUP_KEYS else {}
    activation = _activation_values(scope, periods) if keys & ACTIVATION_KEYS else {}
    nps = _nps_counts(scope, periods) if "nps" in keys else {}
    out = []
    for i, p in enumerate(periods):
        days = days_so_far(p, as_of)
        r = rollup.get(i, {})
        a = activation.get(i, {})
        score = nps.get(i, NpsScore(0, 0, 0))
        if days == 0:  # a period that has not begun has no values, not zeros
            out.append(PeriodValues(p, dict.fromkeys(METRICS), score, 0, 0))
            continue
        mau = r.get("mau", 0)
        active_days = r.get("active_days", 0)
        dau = _ratio(active_days, days)
        values: dict[str, Decimal | None] = {
            "mau": Decimal(mau),
            "dau": dau,
            "stickiness": _ratio(dau, mau, 100),
            "trial_requests": Decimal(r.get("trial_requests", 0)),
            "trial_starts": Decimal(r.get("trial_starts", 0)),
            "second_trials": Decimal(r.get("second_trials", 0)),
            "activations": Decimal(a.get("activations", 0)),
            "activation_rate": _ratio(a.get("activations", 0), a.get("starters", 0), 100),
            "demos": Decimal(r.get("demos", 0)),
            "trainings": Decimal(r.get("trainings", 0)),
            "avg_rating": _ratio(r.get("rating_sum"), r.get("ratings")),
            "sessions_per_user": _ratio(r.get("sessions"), mau),
            "usage_frequency": _ratio(active_days, mau),
            "nps": score.score,
        }
        for key in ROLLUP_KEYS - keys:  # not asked for: its aggregates were not computed
            values[key] = None
        out.append(PeriodValues(p, values, score, a.get("starters", 0), days))
    return out


def history(period: Period, count: int = HISTORY) -> list[Period]:
    """``count`` periods before ``period`` and ``period`` itself, oldest first."""
    periods = [period]
    for _ in range(count):
        periods.insert(0, periods[0].previous())
    return periods


# --- Tiles: value, change, target, sparkline ------------------------------------------------------


@dataclass
class Tile:
    metric: Metric
    kpi: KpiValue
    status: TargetStatus | None = None
    incomplete: bool = False
    detail: str = ""

    @property
    def change_percent(self) -> Decimal | None:
        """Change vs the previous period in %, or None when the previous value is 0 or missing ("new")."""
        if self.kpi.value is None or not self.kpi.previous:
            return None
        return ((self.kpi.value - self.kpi.previous) * 100 / abs(self.kpi.previous)).quantize(Decimal("0.1"))


def _targets(scope: Scope, period: Period, keys) -> dict[str, Target]:
    if period.kind != "month" or scope.sliced:
        return {}
    qs = Target.objects.for_month(period.start).for_scope(product_id=scope.product.pk if scope.product else None)
    return {t.kpi: t for t in qs.filter(kpi__in=list(keys))}


def _pace(scope: Scope, period: Period, keys, *, as_of: datetime, current: PeriodValues) -> dict[str, Decimal]:
    """Daily increase of cumulative KPIs over the last week of the running month (for projections)."""
    cutoff = as_of.date() - timedelta(days=PACE_DAYS - 1)
    if not period.start < cutoff <= as_of.date() < period.end:
        return {}
    earlier = period_values(scope, [Period("custom", period.start, cutoff)], as_of=as_of, keys=keys)[0]
    window = elapsed_days(period, as_of) - Decimal((cutoff - period.start).days)
    pace = {}
    for key in keys:
        now_value, then_value = current.values.get(key), earlier.values.get(key)
        if now_value is not None and then_value is not None and window > 0:
            pace[key] = (now_value - then_value) / window
    return pace


def adoption_tiles(scope: Scope, period: Period, *, as_of: datetime, keys=None) -> list[Tile]:
    """One tile per KPI: value, previous period, target status and a sparkline of the last 13 periods."""
    keys = list(keys or TILE_KEYS)
    series = period_values(scope, history(period), as_of=as_of, keys=keys)
    current, previous = series[-1], series[-2]
    targets = _targets(scope, period, keys)
    cumulative_with_target = [k for k in keys if k in targets and METRICS[k].accumulation == Accumulation.CUMULATIVE]
    pace = _pace(scope, period, cumulative_with_target, as_of=as_of, current=current) if cumulative_with_target else {}
    incomplete = as_of < period.end_dt
    tiles = []
    for key in keys:
        metric = METRICS[key]
        value = current.values[key]
        target = targets.get(key)
        status = None
        if target is not None:
            status = evaluate(
                target=target.value,
                direction=Direction(target.direction),
                accumulation=metric.accumulation,
                current=value,
                elapsed=elapsed_days(period, as_of),
                total_days=period.days,
                pace_per_day=pace.get(key),
                start=previous.values[key],
            )
        detail = ""
        if key == "nps":
            detail = current.nps.label
        elif key == "activation_rate" and value is not None:
            detail = f"{current.values['activations']:,} of {current.starters:,} first trial starts"
        kpi = KpiValue(
            key=key,
            title=metric.title,
            unit=metric.unit,
            direction=Direction(target.direction) if target else metric.direction,
            url_name="adoption:overview",
            accumulates=metric.accumulation == Accumulation.CUMULATIVE,
            value=metric.round(value),
            previous=metric.round(previous.values[key]),
            target=target.value if target else None,
            # The registry's colours are green/amber/red; "no data yet" (grey) shows on the adoption tiles only.
            rag=status.rag.value if status and status.rag and status.rag != Rag.GREY else None,
            sparkline=[metric.round(pv.values[key]) for pv in series],
            n=current.nps.n if key == "nps" else None,
            note="NPS is per product: location and role filters do not apply." if key == "nps" and scope.sliced else "",
        )
        tiles.append(Tile(metric, kpi, status, incomplete, detail))
    return tiles


# --- Funnel ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStep:
    key: str
    label: str
    users: int
    step_conversion: Decimal | None  # this step / the previous one, %
    overall_conversion: Decimal | None  # this step / the first one, %


FUNNEL_LABELS = [
    ("requested", "Trial requested"),
    ("started", "Trial started"),
    ("second", "Second trial requested"),
    ("active", "Active"),
]


def trial_funnel(scope: Scope, period: Period) -> list[FunnelStep]:
    """Requested -> started -> second trial -> active, sequential, within 30 days of the request.

    Entry: a product-user's first ``trial_requested`` (matching the filters) in the period. Each later
    step needs its event at or after the previous step's time and within 30 days of the entry; the
    second-trial step is the explicit ``second_trial_requested`` event and "active" any usage event.
    """
    window_end = OuterRef("timestamp") + ACTIVATION_WINDOW
    counts = dict.fromkeys([key for key, _ in FUNNEL_LABELS], 0)
    for one in scope.per_product():

        def next_step(name: str, after, one=one):
            return Subquery(
                TrialEvent.objects.filter(
                    one.event_q(),
                    name=name,
                    user_id=OuterRef("user_id"),
                    timestamp__gte=after,
                    timestamp__lte=window_end,
                )
                .order_by("timestamp")
                .values("timestamp")[:1]
            )

        found = (
            _first_occurrences(one, EventName.TRIAL_REQUESTED)
            .filter(timestamp__gte=period.start_dt, timestamp__lt=period.end_dt)
            .annotate(started_at=next_step(EventName.TRIAL_STARTED, OuterRef("timestamp")))
            .annotate(second_at=next_step(EventName.SECOND_TRIAL_REQUESTED, OuterRef("started_at")))
            .annotate(used_after=_used_between(one, OuterRef("second_at"), window_end))
            .aggregate(
                requested=Count("pk"),
                started=Count("pk", filter=Q(started_at__isnull=False)),
                second=Count("pk", filter=Q(second_at__isnull=False)),
                active=Count("pk", filter=Q(used_after=True)),
            )
        )
        for key in counts:
            counts[key] += found[key]
    steps, first, before = [], counts["requested"], None
    for key, label in FUNNEL_LABELS:
        users = counts[key]
        steps.append(
            FunnelStep(
                key,
                label,
                users,
                None if before is None else _pct(users, before),
                _pct(users, first),
            )
        )
        before = users
    return steps


def _pct(part: int, whole: int) -> Decimal | None:
    return None if not whole else (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"))


# --- Daily trend: DAU, rolling 30-day MAU, stickiness ---------------------------------------------


@dataclass(frozen=True)
class TrendPoint:
    day: date
    dau: int
    mau_30: int
    stickiness: Decimal | None  # dau / rolling 30-day MAU, %


def rolling_active_users(scope: Scope, first: date, last: date, *, window: int = ROLLING_DAYS) -> dict[date, int]:
    """Distinct users active in the ``window`` days ending with each day from ``first`` to ``last``.

    Linear in user-days: each user's activity days become coverage intervals [day, day + window),
    merged when they overlap; +1 where a merged interval starts, -1 where it ends, and a running sum.
    """
    lo, hi = day_number(first), day_number(last)
    inner = (
        UserDay.objects.filter(
            scope.userday_q(), usage_events__gt=0, day_number__gte=lo - window + 1, day_number__lte=hi
        )
        .values("user_id", "day_number")
        .distinct()
        .order_by()
    )
    try:
        inner_sql, inner_params = inner.query.sql_with_params()
    except EmptyResultSet:  # the scope names no product (e.g. a catalog with none yet): nobody is active
        return {first + timedelta(days=i): 0 for i in range(hi - lo + 1)}
    sql = f"""
        WITH ud AS ({inner_sql}),
        w AS (
            SELECT day_number AS n,
                LAG(day_number) OVER (PARTITION BY user_id ORDER BY day_number) AS prev_n,
                LEAD(day_number) OVER (PARTITION BY user_id ORDER BY day_number) AS next_n
            FROM ud
        ),
        deltas AS (
            SELECT n AS at, 1 AS d FROM w WHERE prev_n IS NULL OR n - prev_n >= %s
            UNION ALL
            SELECT n + %s AS at, -1 AS d FROM w WHERE next_n IS NULL OR next_n - n >= %s
        )
        SELECT at, SUM(d) FROM deltas GROUP BY at ORDER BY at
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [*inner_params, window, window, window])
        changes = cursor.fetchall()
    out, running, i = {}, 0, 0
    for n in range(lo - window + 1, hi + 1):
        while i < len(changes) and changes[i][0] <= n:
            running += int(changes[i][1])
            i += 1
        if n >= lo:
            out[first + timedelta(days=n - lo)] = running
    return out


def daily_trend(scope: Scope, period: Period, *, as_of: datetime) -> list[TrendPoint]:
    last = min(period.end, as_of.date() + timedelta(days=1)) - timedelta(days=1)
    if last < period.start:
        return []
    dau = dict(
        UserDay.objects.filter(scope.userday_q(), usage_events__gt=0, day__gte=period.start, day__lte=last)
        .values("day")
        .annotate(n=Count("user_id", distinct=True))
        .values_list("day", "n")
        .order_by()
    )
    rolling = rolling_active_users(scope, period.start, last)
    points = []
    for offset in range((last - period.start).days + 1):
        day = period.start + timedelta(days=offset)
        d, m = dau.get(day, 0), rolling.get(day, 0)
        points.append(TrendPoint(day, d, m, _pct(d, m)))
    return points


# --- Retention by monthly cohort ------------------------------------------------------------------


@dataclass(frozen=True)
class CohortRow:
    month: date
    size: int
    retained: list[int | None]  # users active in month k after the cohort month (None: not reached yet)
    rates: list[Decimal | None]  # retained / size, %
    incomplete: int | None  # the offset of the running month, marked on the page

    @property
    def cells(self) -> list[dict]:
        return [
            {"retained": n, "rate": rate, "incomplete": k == self.incomplete}
            for k, (n, rate) in enumerate(zip(self.retained, self.rates, strict=True))
        ]


@dataclass(frozen=True)
class RetentionTable:
    rows: list[CohortRow]
    offsets: list[int]
    average: list[Decimal | None]  # weighted by cohort size, over complete months only


def retention_table(scope: Scope, period: Period, *, as_of: datetime, months: int = 12) -> RetentionTable:
    """First-time monthly retention, calendar months, "on" month N (PostHog's default).

    A user's cohort is the calendar month of their first usage (within the filters); they are retained
    in month N if they have a usage event in the N-th calendar month after it. Cohorts are the
    ``months`` months ending with the period's last month.
    """
    last_month = month_number(min(period.end - timedelta(days=1), as_of.date()))
    first_month = last_month - months + 1
    now_month = month_number(as_of.date())
    inner = (
        UserDay.objects.filter(scope.userday_q(), usage_events__gt=0, month_number__lte=now_month)
        .values("user_id", "month_number")
        .distinct()
        .order_by()
    )
    inner_sql, inner_params = inner.query.sql_with_params()
    sql = f"""
        SELECT cohort, month_number - cohort AS k, COUNT(*) FROM (
            SELECT user_id, month_number, MIN(month_number) OVER (PARTITION BY user_id) AS cohort
            FROM ({inner_sql}) AS a
        ) AS b
        WHERE cohort >= %s AND cohort <= %s AND month_number - cohort < %s
        GROUP BY cohort, month_number - cohort
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [*inner_params, first_month, last_month, months])
        counts = {(int(c), int(k)): int(n) for c, k, n in cursor.fetchall()}
    rows = []
    weighted = [[0, 0] for _ in range(months)]
    for cohort in range(first_month, last_month + 1):
        size = counts.get((cohort, 0), 0)
        retained, rates = [], []
        for k in range(months):
            if cohort + k > now_month:
                retained.append(None)
                rates.append(None)
                continue
            n = counts.get((cohort, k), 0)
            retained.append(n)
            rates.append(_pct(n, size))
            if cohort + k < now_month and size:
                weighted[k][0] += n
                weighted[k][1] += size
        incomplete = now_month - cohort if 0 <= now_month - cohort < months else None
        rows.append(CohortRow(month_from_number(cohort), size, retained, rates, incomplete))
    average = [_pct(n, size) if size else None for n, size in weighted]
    return RetentionTable(rows, list(range(months)), average)


# --- Store / region / role table ------------------------------------------------------------------

BREAKDOWNS = {"store": "location_id", "region": "region_id", "role": "role"}


def breakdown_rows(scope: Scope, period: Period, *, by: str, sort: str, as_of: datetime):
    """Every metric of the daily rollup per store, region or role, sorted in SQL by any column.

    ``sort`` is a metric key, ``name``, or either with a leading ``-`` for descending order.
    """
    from .metrics import BREAKDOWN_KEYS

    column = BREAKDOWNS[by]
    days = max(1, days_so_far(period, as_of))
    active = Q(usage_events__gt=0)
    qs = (
        UserDay.objects.filter(scope.userday_q(), day__gte=period.start, day__lt=period.end)
        .exclude(**{f"{column}__isnull": True} if by != "role" else {"role": ""})
        .values(column)
        .annotate(
            mau=Count("user_id", distinct=True, filter=active),
            active_days=Count(_active_day_key(), distinct=True, filter=active),
            trial_requests=Count("user_id", distinct=True, filter=Q(trial_requests__gt=0)),
            trial_starts=Count("user_id", distinct=True, filter=Q(trial_starts__gt=0)),
            second_trials=Count("user_id", distinct=True, filter=Q(second_trial_requests__gt=0)),
            demos=Count("user_id", distinct=True, filter=Q(demos__gt=0)),
            trainings=Count("user_id", distinct=True, filter=Q(trainings__gt=0)),
            sessions=Sum("sessions"),
            ratings=Sum("ratings"),
            rating_sum=Sum("rating_sum"),
        )
        .annotate(
            dau=ExpressionWrapper(F("active_days") * 1.0 / days, output_field=FloatField()),
            stickiness=ExpressionWrapper(
                F("active_days") * 100.0 / days / NullIf(F("mau"), 0), output_field=FloatField()
            ),
            avg_rating=ExpressionWrapper(F("rating_sum") * 1.0 / NullIf(F("ratings"), 0), output_field=FloatField()),
            sessions_per_user=ExpressionWrapper(F("sessions") * 1.0 / NullIf(F("mau"), 0), output_field=FloatField()),
            usage_frequency=ExpressionWrapper(F("active_days") * 1.0 / NullIf(F("mau"), 0), output_field=FloatField()),
        )
    )
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    if key not in BREAKDOWN_KEYS and key != "name":
        raise ApplicationError(f"cannot sort by {key!r}; sort by name or one of {', '.join(BREAKDOWN_KEYS)}")
    order = F(column) if key == "name" else F(key)
    order = order.desc(nulls_last=True) if descending else order.asc(nulls_last=True)
    return qs.order_by(order, column)


def label_breakdown(rows: list[dict], *, by: str) -> list[dict]:
    """Add ``key`` and ``name`` to a page of breakdown rows (one query for the locations' names)."""
    column = BREAKDOWNS[by]
    names = {}
    if by != "role":
        ids = [r[column] for r in rows]
        names = {loc.pk: loc for loc in Location.objects.filter(pk__in=ids)}
    out = []
    for r in rows:
        if by == "role":
            key, name = r["role"], r["role"].replace("_", " ").capitalize()
        else:
            loc = names.get(r[column])
            key, name = (loc.code, loc.name) if loc else (str(r[column]), str(r[column]))
        out.append({**r, "key": key, "name": name})
    return out


# --- NPS ------------------------------------------------------------------------------------------


def nps_responses(scope: Scope, period: Period) -> QuerySet[NpsResponse]:
    return NpsResponse.objects.filter(
        product_id__in=scope.product_ids, submitted_at__gte=period.start_dt, submitted_at__lt=period.end_dt
    )


def nps_distribution(scope: Scope, period: Period) -> list[int]:
    """How many answered each score 0..10 in the period."""
    counts = dict(
        nps_responses(scope, period).values("score").annotate(n=Count("pk")).values_list("score", "n").order_by()
    )
    return [counts.get(score, 0) for score in range(11)]


def nps_comments(scope: Scope, period: Period) -> QuerySet[NpsResponse]:
    return nps_responses(scope, period).exclude(comment="").select_related("campaign", "campaign__product")


def nps_campaigns(scope: Scope) -> QuerySet[NpsCampaign]:
    return (
        NpsCampaign.objects.filter(product_id__in=scope.product_ids)
        .select_related("product")
        .annotate(
            promoters=Count("responses", filter=Q(responses__score__gte=9)),
            passives=Count("responses", filter=Q(responses__score__gte=7, responses__score__lte=8)),
            detractors=Count("responses", filter=Q(responses__score__lte=6)),
        )
    )


def nps_for_campaign(campaign) -> NpsScore:
    return NpsScore(campaign.promoters, campaign.passives, campaign.detractors)


def nps_trend(scope: Scope, period: Period, *, as_of: datetime) -> list[tuple[Period, NpsScore]]:
    periods = history(period)
    counts = _nps_counts(scope, periods)
    return [(p, counts.get(i, NpsScore(0, 0, 0))) for i, p in enumerate(periods) if p.start <= as_of.date()]


def respondent_answer(campaign: NpsCampaign, respondent: str) -> NpsResponse | None:
    return NpsResponse.objects.filter(campaign=campaign, respondent=respondent).first()


def targets_for(scope: Scope, *, products) -> QuerySet[Target]:
    """Adoption targets of the products in view (and organisation-wide ones), newest month first."""
    q = Q(kpi__in=list(METRICS), service__isnull=True)
    product_ids = [p.pk for p in products]
    q &= Q(product_id__in=product_ids) | Q(product__isnull=True) if scope.product is None else Q(product=scope.product)
    return Target.objects.filter(q).select_related("product", "created_by").order_by("-month", "product__name", "kpi")


def target_tiles(targets: list[Target], period: Period, *, as_of: datetime) -> dict[int, Tile]:
    """Status of the targets set for ``period`` (a month), computed with the tiles' own function."""
    if period.kind != "month":
        return {}
    groups: dict[int | None, list[Target]] = {}
    for t in targets:
        if t.month == period.start:
            groups.setdefault(t.product_id, []).append(t)
    everything = tuple(Product.objects.order_by("name"))
    out: dict[int, Tile] = {}
    for product_id, group in groups.items():
        product = next((p for p in everything if p.pk == product_id), None)
        scope = Scope(products=(product,), product=product) if product else Scope(products=everything)
        tiles = {t.kpi.key: t for t in adoption_tiles(scope, period, as_of=as_of, keys=[g.kpi for g in group])}
        out.update({g.pk: tiles[g.kpi] for g in group})
    return out
