"""Cost anomalies: same-weekday median and MAD over eight weeks, with money and relative floors; by hand.

The detector reads daily rollups, so these tests write rollup rows directly (they are its input).
"""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from apps.billing.anomalies import cost_anomalies, expected_range, judge, median
from apps.billing.models import BillingSource, CostRollup
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db

MONDAYS = [Decimal(v) for v in (100, 102, 98, 101, 99, 100, 103, 97)]
FIRST_MONDAY = date(2026, 1, 5)  # weeks 1-8 run to Sunday 1 March; Monday 2 March is week 9
MARCH = (date(2026, 3, 1), date(2026, 4, 1))


def test_expected_range_is_the_median_plus_minus_three_scaled_mads():
    # Sorted: 97 98 99 100 100 101 102 103 -> median (100 + 100) / 2 = 100.
    # Deviations 0 0 1 1 2 2 3 3 -> MAD (1 + 2) / 2 = 1.5; band 3 x 1.4826 x 1.5 = 6.6717.
    window = expected_range(MONDAYS)
    assert window.expected == Decimal(100)
    assert window.lower == Decimal("93.3283")
    assert window.upper == Decimal("106.6717")
    assert median([Decimal(3), Decimal(1), Decimal(2)]) == 2


def _week(scale: int = 1) -> dict[date, Decimal]:
    """Eight weeks: Mondays as MONDAYS, Saturdays 300 (the weekend peak), other days 150; times ``scale``."""
    series = {}
    for week in range(8):
        monday = FIRST_MONDAY + timedelta(weeks=week)
        for offset in range(7):
            value = MONDAYS[week] if offset == 0 else Decimal(300) if offset == 5 else Decimal(150)
            series[monday + timedelta(days=offset)] = value * scale
    return series


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def test_a_monday_as_costly_as_a_normal_saturday_is_a_spike():
    series = _week()
    week9 = {date(2026, 3, 2) + timedelta(days=i): v for i, v in enumerate([300, 150, 150, 150, 150, 300, 150])}
    series.update({d: Decimal(v) for d, v in week9.items()})
    found = judge(series, _days(date(2026, 3, 1), date(2026, 3, 8)), newest_day=date(2026, 3, 8))
    # Only Monday: 300 against 100 expected. Saturday's 300 is that weekday's norm; Sunday 1 March sits on a
    # flat history (MAD 0) exactly at its median.
    assert [(day, actual, w.expected) for day, actual, w in found] == [(date(2026, 3, 2), Decimal(300), Decimal(100))]


@pytest.mark.parametrize(
    ("monday", "flagged"),
    [
        (Decimal(120), False),  # outside 93.33-106.67 but only 20 above: under the 50 floor
        (Decimal(160), True),  # 60 above (60 %)
        (Decimal(40), True),  # 60 below: a drop
    ],
)
def test_the_money_floor_applies_to_both_directions(monday, flagged):
    series = _week() | {date(2026, 3, 2): monday, date(2026, 3, 3): Decimal(150)}
    found = judge(series, [date(2026, 3, 2)], newest_day=date(2026, 3, 3))
    assert bool(found) is flagged


def test_the_relative_floor_keeps_a_few_percent_off_the_list():
    # Scaled by 10: expected 1,000, range 933.28-1,066.72. 1,100 is 100 (10 %) above: not listed; 1,250 is.
    series = _week(10) | {date(2026, 3, 3): Decimal(1500)}
    assert judge(series | {date(2026, 3, 2): Decimal(1100)}, [date(2026, 3, 2)], newest_day=date(2026, 3, 3)) == []
    found = judge(series | {date(2026, 3, 2): Decimal(1250)}, [date(2026, 3, 2)], newest_day=date(2026, 3, 3))
    assert found[0][1] - found[0][2].expected == Decimal(250)


def test_the_newest_day_can_spike_but_not_drop_and_a_silent_series_is_not_judged():
    series = _week() | {date(2026, 3, 2) + timedelta(days=i): Decimal(150) for i in range(5)}
    low_saturday = series | {date(2026, 3, 7): Decimal(100)}  # 200 under the usual 300
    # 7 March is the newest day with any cost: it may still be filling in.
    assert judge(low_saturday, [date(2026, 3, 7)], newest_day=date(2026, 3, 7)) == []
    # Once a later day has landed (elsewhere), the low Saturday is a real drop.
    assert judge(low_saturday | {date(2026, 3, 8): Decimal(150)}, [date(2026, 3, 7)], newest_day=date(2026, 3, 8))
    # A series that stopped (no cost after 6 March) is not flagged day after day.
    assert judge(series, [date(2026, 3, 7), date(2026, 3, 8)], newest_day=date(2026, 3, 9)) == []


def test_a_new_series_needs_four_weeks_of_history():
    series = {FIRST_MONDAY + timedelta(weeks=5 + w): Decimal(100) for w in range(3)}
    series[FIRST_MONDAY + timedelta(weeks=8)] = Decimal(900)
    assert judge(series, [FIRST_MONDAY + timedelta(weeks=8)], newest_day=FIRST_MONDAY + timedelta(weeks=8)) == []


@pytest.fixture
def source():
    return BillingSource.objects.create(name="anomaly-test")


def _rollups(source, series: dict[date, Decimal], *, service=None, sub="111", category="Usage") -> None:
    CostRollup.objects.bulk_create(
        CostRollup(
            day=day,
            source=source,
            billing_period_start=day.replace(day=1),
            service=service,
            provider="AWS",
            sub_account_id=sub,
            charge_category=category,
            billed_cost=value,
            effective_cost=value,
        )
        for day, value in series.items()
    )


def test_anomalies_from_the_rollups_per_service_and_sub_account_newest_first(source):
    promo = ServiceFactory(slug="promo", name="Promotions")
    cart = ServiceFactory(slug="cart", name="Cart")
    normal = [100, 150, 150, 150, 150, 300, 150]  # week 9 as usual, Monday first
    week9 = {date(2026, 3, 2) + timedelta(days=i): Decimal(v) for i, v in enumerate(normal)}
    _rollups(source, _week() | week9 | {date(2026, 3, 2): Decimal(400)}, service=promo, sub="111")
    # Cart's Thursday 5 March costs 150 + 90 = 240 against 150 expected.
    _rollups(source, _week() | week9 | {date(2026, 3, 5): Decimal(240)}, service=cart, sub="222")
    # A credit and a purchase are billing events, not consumption: never anomalies.
    _rollups(source, {date(2026, 3, 3): Decimal(-5000)}, service=promo, sub="111", category="Credit")
    _rollups(source, {date(2026, 3, 4): Decimal(5000)}, service=promo, sub="111", category="Purchase")

    found = cost_anomalies(*MARCH)
    assert [(a.day, a.dimension, a.label) for a in found] == [
        (date(2026, 3, 5), "service", "Cart"),
        (date(2026, 3, 5), "sub_account", "AWS 222"),
        (date(2026, 3, 2), "service", "Promotions"),
        (date(2026, 3, 2), "sub_account", "AWS 111"),
    ]
    promo_spike = found[2]
    assert (promo_spike.key, promo_spike.direction) == ("promo", "spike")
    assert (promo_spike.expected, promo_spike.actual, promo_spike.excess) == (Decimal(100), Decimal(400), Decimal(300))
    assert (promo_spike.lower, promo_spike.upper) == (Decimal("93.3283"), Decimal("106.6717"))
    assert found[0].excess == Decimal(90)

    only_promo = cost_anomalies(*MARCH, service="promo", dimensions=("service",))
    assert [a.key for a in only_promo] == ["promo"]
    assert cost_anomalies(*MARCH, min_excess=Decimal(95)) == [a for a in found if a.excess >= 95]
    assert cost_anomalies(date(2026, 2, 1), date(2026, 3, 1)) == []
