"""Cost anomalies: days whose cost for a service or a sub-account falls outside its expected range.

Retail cost is weekly: promotions and checkouts peak at the weekend, batch jobs do not. So a day is
compared with the **same weekday** of the trailing eight weeks, with robust statistics that one past
spike cannot distort:

- ``expected`` = median of those (up to) eight days;
- ``MAD`` = median of their absolute deviations from ``expected``; scaled by 1.4826 it estimates the
  standard deviation of normally distributed cost;
- the expected range is ``expected ± 3 x 1.4826 x MAD``;
- a day is an anomaly when its cost is outside that range **and** differs from ``expected`` by at least
  ``min_excess`` (default 50 in the billing currency) **and** by at least ``min_ratio`` of it (default
  20 %), so a flat history (MAD 0), a cheap series or a steady few-percent drift does not fill the list.

Only usage counts (``ChargeCategory`` Usage): credits, purchases, taxes and adjustments are one-off
billing events, not consumption, and would otherwise show as drops or spikes every month. A series
needs at least four same-weekday observations since it first appears; days after its last cost are not
judged (a retired service is not a daily anomaly), and the newest day with any cost may still be filling
in, so it can show a spike but never a drop. Everything is summed per day in the database; only the
medians are computed here.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import F, Max, Sum

from .models import CostRollup
from .reports import ZERO, cost_field

WEEKS = 8
MIN_HISTORY = 4
K = Decimal(3)
MAD_SCALE = Decimal("1.4826")
MIN_EXCESS = Decimal(50)
MIN_RATIO = Decimal("0.2")
USAGE = "Usage"
DIMENSIONS = {"service": "Service", "sub_account": "Sub-account"}


@dataclass(frozen=True)
class ExpectedRange:
    expected: Decimal
    lower: Decimal
    upper: Decimal


def median(values: list[Decimal]) -> Decimal:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def expected_range(history: list[Decimal], *, k: Decimal = K) -> ExpectedRange:
    centre = median(history)
    mad = median([abs(v - centre) for v in history])
    band = k * MAD_SCALE * mad
    return ExpectedRange(centre, centre - band, centre + band)


@dataclass(frozen=True)
class Anomaly:
    day: date
    dimension: str  # "service" or "sub_account"
    key: str  # service slug, or "provider:sub-account id"
    label: str
    actual: Decimal
    expected: Decimal
    lower: Decimal
    upper: Decimal

    @property
    def excess(self) -> Decimal:
        """How much more (negative: less) the day cost than expected."""
        return self.actual - self.expected

    @property
    def direction(self) -> str:
        return "spike" if self.actual > self.expected else "drop"

    @property
    def dimension_label(self) -> str:
        return DIMENSIONS[self.dimension]


def judge(
    series: dict[date, Decimal],
    days: list[date],
    *,
    newest_day: date,
    min_excess: Decimal = MIN_EXCESS,
    min_ratio: Decimal = MIN_RATIO,
    k: Decimal = K,
) -> list[tuple[date, Decimal, ExpectedRange]]:
    """The days of ``days`` on which ``series`` (cost per day; a missing day cost nothing) is anomalous."""
    if not series:
        return []
    first, last = min(series), max(series)
    found = []
    for day in days:
        if day < first or day > last:
            continue
        history = [series.get(h, ZERO) for w in range(1, WEEKS + 1) if (h := day - timedelta(weeks=w)) >= first]
        if len(history) < MIN_HISTORY:
            continue
        actual = series.get(day, ZERO)
        window = expected_range(history, k=k)
        outside = actual > window.upper or (actual < window.lower and day < newest_day)
        gap = abs(actual - window.expected)
        if outside and gap >= min_excess and gap >= min_ratio * abs(window.expected):
            found.append((day, actual, window))
    return found


def _series(start: date, end: date, dim: str, amount: str, service: str | None) -> dict[tuple[str, str], dict]:
    qs = CostRollup.objects.filter(day__gte=start, day__lt=end, charge_category=USAGE)
    if service:
        qs = qs.filter(service__slug=service)
    if dim == "service":
        qs = qs.filter(service__isnull=False).values("day", key=F("service__slug"), label=F("service__name"))
    else:
        qs = qs.exclude(sub_account_id="").values("day", "provider", key=F("sub_account_id"), label=F("sub_account_id"))
    out: dict[tuple[str, str], dict] = defaultdict(dict)
    for r in qs.annotate(total=Sum(amount)).order_by():
        if dim == "service":
            key, label = r["key"], r["label"]
        else:
            key, label = f"{r['provider']}:{r['key']}", f"{r['provider'] or 'Unknown provider'} {r['label']}"
        out[(key, label)][r["day"]] = r["total"] or ZERO
    return out


def cost_anomalies(
    start: date,
    end: date,
    *,
    cost: str = "effective",
    dimensions: tuple[str, ...] = ("service", "sub_account"),
    service: str | None = None,
    min_excess: Decimal = MIN_EXCESS,
    min_ratio: Decimal = MIN_RATIO,
) -> list[Anomaly]:
    """Anomalous days in ``[start, end)``, newest first (largest excess first within a day)."""
    amount = cost_field(cost)
    newest = CostRollup.objects.filter(charge_category=USAGE).aggregate(day=Max("day"))["day"]
    if newest is None:
        return []
    data_end = newest + timedelta(days=1)
    end = min(end, data_end)
    if end <= start:
        return []
    days = [start + timedelta(days=i) for i in range((end - start).days)]
    history_start = start - timedelta(weeks=WEEKS)
    found = []
    for dim in dimensions:
        if dim not in DIMENSIONS:
            raise ValueError(f"dimension {dim!r} is not one of: {', '.join(DIMENSIONS)}")
        for (key, label), series in _series(history_start, data_end, dim, amount, service).items():
            for day, actual, window in judge(
                series, days, newest_day=newest, min_excess=min_excess, min_ratio=min_ratio
            ):
                found.append(Anomaly(day, dim, key, label, actual, window.expected, window.lower, window.upper))
    found.sort(key=lambda a: (a.day, abs(a.excess)), reverse=True)
    return found
