"""Targets: red/amber/green and month-end projections, hand-computed, in both directions."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from apps.adoption import selectors
from apps.adoption.services import adoption_target_set, events_ingest, rollups_refresh_all
from apps.core.periods import month_of
from apps.kpis.models import Target
from apps.kpis.registry import Direction
from apps.kpis.targets import Accumulation, Rag, elapsed_days, evaluate, progress, rag_for

from .factories import ev, make_catalog

UP, DOWN = Direction.UP_IS_GOOD, Direction.DOWN_IS_GOOD
CUM, LEVEL = Accumulation.CUMULATIVE, Accumulation.LEVEL


def status(target, current, *, direction=UP, kind=CUM, elapsed=15, total=30, pace=None, start=None):
    return evaluate(
        target=D(target),
        direction=direction,
        accumulation=kind,
        current=None if current is None else D(current),
        elapsed=D(elapsed),
        total_days=total,
        pace_per_day=None if pace is None else D(pace),
        start=None if start is None else D(start),
    )


# --- Cumulative, up is good: 2,000 demos a month, half the month gone ------------------------------


@pytest.mark.parametrize(
    ("current", "projected", "rag"),
    [
        ("1000", "2000", Rag.GREEN),  # on the pro-rata line: 1000 / (2000 x 0.5) = 100 %
        ("950", "1900", Rag.AMBER),  # 95 % of pace: within 10 %
        ("900", "1800", Rag.AMBER),  # exactly 90 %
        ("899", "1798", Rag.RED),
    ],
)
def test_a_cumulative_target_is_judged_on_the_pro_rata_pace(current, projected, rag):
    s = status("2000", current)
    assert s.projected == D(projected)
    assert s.rag == rag
    assert s.reaches is (rag == Rag.GREEN)
    assert s.progress == D(current) / D(2000)


@pytest.mark.parametrize(
    ("pace", "projected", "rag"), [("70", "2000", Rag.GREEN), ("52.5", "1825", Rag.AMBER), ("40", "1700", Rag.RED)]
)
def test_a_recent_pace_projects_from_today(pace, projected, rag):
    # Day 20 of 30 with 1,300 so far: 1,300 + pace x 10 remaining days.
    s = status("2000", "1300", elapsed=20, pace=pace)
    assert s.projected == D(projected)
    assert s.rag == rag


# --- Level KPIs: +1 star average rating, and a down-is-good unit cost ------------------------------


@pytest.mark.parametrize(
    ("current", "rag", "progress_"),
    [
        ("4.25", Rag.GREEN, "1"),
        ("4.2", Rag.GREEN, "1"),
        ("3.9", Rag.AMBER, "0.7"),
        ("3.78", Rag.AMBER, "0.58"),
        ("3.7", Rag.RED, "0.5"),
    ],
)
def test_a_level_target_compares_the_month_to_date_value(current, rag, progress_):
    # Last month 3.2 stars, target 4.2 (+1 star); amber down to 4.2 - 0.42 = 3.78.
    s = status("4.2", current, kind=LEVEL, start="3.2", elapsed=10)
    assert s.projected == D(current)
    assert s.rag == rag
    assert s.progress == D(progress_)


@pytest.mark.parametrize(
    ("current", "rag", "progress_"),
    [
        ("7.90", Rag.GREEN, "1"),
        ("8.00", Rag.GREEN, "1"),
        ("8.50", Rag.AMBER, "0.75"),
        ("8.80", Rag.AMBER, "0.6"),
        ("9.00", Rag.RED, "0.5"),
    ],
)
def test_down_is_good_mirrors_the_bands(current, rag, progress_):
    # Unit cost: 10.00 last month, target 8.00; amber up to 8.00 + 0.80.
    s = status("8.00", current, direction=DOWN, kind=LEVEL, start="10.00")
    assert s.rag == rag
    assert s.progress == D(progress_)
    assert s.reaches is (rag == Rag.GREEN)


@pytest.mark.parametrize(
    ("current", "projected", "rag"), [("150", "450", Rag.GREEN), ("180", "540", Rag.AMBER), ("200", "600", Rag.RED)]
)
def test_a_down_is_good_cap_on_a_count_projects_too(current, projected, rag):
    # At most 500 trial requests this month (limited trial seats); a third of the month gone.
    s = status("500", current, direction=DOWN, elapsed=10)
    assert s.projected == D(projected)
    assert s.rag == rag


def test_no_data_is_grey_never_green_and_a_future_month_has_no_status():
    assert status("100", None).rag == Rag.GREY
    future = status("100", "0", elapsed=0)
    assert future.rag is None and future.projected is None


def test_an_ended_month_is_judged_on_its_final_value():
    s = status("100", "95", elapsed=31, total=31, pace="50")
    assert s.projected == D(95) and s.complete
    assert s.rag == Rag.AMBER


def test_amber_band_is_ten_percent_of_the_target_size_and_zero_at_zero():
    assert rag_for(D("-1"), D("0"), UP) == Rag.RED
    assert rag_for(D("-27"), D("-30"), UP) == Rag.GREEN
    assert rag_for(D("-32"), D("-30"), UP) == Rag.AMBER  # -30 - 3 = -33 is the amber floor
    assert rag_for(D("-34"), D("-30"), UP) == Rag.RED


def test_progress_guards_a_target_equal_to_its_start():
    assert progress(D(5), D(5), start=D(5), direction=UP) == 1
    assert progress(D(4), D(5), start=D(5), direction=UP) == 0
    assert progress(D(4), D(5), start=None, direction=UP) is None


def test_elapsed_days_are_fractional_and_clamped():
    nov = month_of(date(2026, 11, 1))
    assert elapsed_days(nov, datetime(2026, 11, 16, 12, tzinfo=UTC)) == D("15.5")
    assert elapsed_days(nov, datetime(2026, 10, 1, tzinfo=UTC)) == 0
    assert elapsed_days(nov, datetime(2027, 1, 1, tzinfo=UTC)) == 30


# --- Through the adoption tiles: targets stored, data ingested, status on the tile -----------------

MARCH = month_of(date(2025, 3, 1))
AS_OF = datetime(2025, 3, 16, tzinfo=UTC)  # 15 of 31 days gone


@pytest.fixture
def march(db):
    """Two new people at a demo and two trial requests every day from 1 to 15 March."""
    catalog = make_catalog()
    events = []
    for day in range(1, 16):
        ts = datetime(2025, 3, day, 10, tzinfo=UTC)
        for i in range(2):
            events.append(ev("alpha", f"demo-{day}-{i}", "demo_attended", ts + timedelta(minutes=i)))
            events.append(ev("alpha", f"req-{day}-{i}", "trial_requested", ts + timedelta(minutes=i)))
    events_ingest(events, schedule_refresh=False)
    rollups_refresh_all()
    return catalog


def _tile(catalog, key):
    scope = selectors.resolve_scope(product="alpha")
    return next(t for t in selectors.adoption_tiles(scope, MARCH, as_of=AS_OF, keys=[key]))


@pytest.mark.parametrize(("target", "rag"), [(60, "green"), (65, "amber"), (70, "red")])
def test_the_demos_tile_shows_the_projection_from_the_last_weeks_pace(march, target, rag):
    adoption_target_set(
        actor=march["owner"], kpi="demos", product=march["products"]["alpha"], month=MARCH.start, value=target
    )
    tile = _tile(march, "demos")
    # 30 people so far; 12 in the last 6 days (10-15 March) = 2 a day; 16 days left: 30 + 32 = 62.
    assert tile.kpi.value == 30
    assert tile.status.projected == 62
    assert tile.kpi.target == target
    assert tile.kpi.rag == rag


@pytest.mark.parametrize(("cap", "rag"), [(62, "green"), (60, "amber"), (56, "red")])
def test_a_down_is_good_target_on_trial_requests(march, cap, rag):
    adoption_target_set(
        actor=march["owner"],
        kpi="trial_requests",
        product=march["products"]["alpha"],
        month=MARCH.start,
        value=cap,
        direction="down",
    )
    tile = _tile(march, "trial_requests")
    assert tile.status.projected == 62
    assert tile.kpi.direction == DOWN
    assert tile.kpi.rag == rag  # 62 vs cap 60: within 6 over, amber; vs 56: more than 5.6 over, red


def test_a_target_does_not_apply_to_a_location_slice(march):
    adoption_target_set(
        actor=march["owner"], kpi="demos", product=march["products"]["alpha"], month=MARCH.start, value=60
    )
    scope = selectors.resolve_scope(product="alpha", location="region-north")
    tile = selectors.adoption_tiles(scope, MARCH, as_of=AS_OF, keys=["demos"])[0]
    assert tile.status is None and tile.kpi.target is None


def test_setting_a_target_twice_replaces_it(march):
    alpha = march["products"]["alpha"]
    adoption_target_set(actor=march["owner"], kpi="demos", product=alpha, month=date(2025, 3, 17), value=60)
    adoption_target_set(actor=march["owner"], kpi="demos", product=alpha, month=MARCH.start, value=75)
    target = Target.objects.get()
    assert (target.month, target.value, target.direction) == (MARCH.start, 75, "up")


def test_a_target_without_data_is_grey_on_the_tile_and_has_no_colour_in_the_registry(march):
    adoption_target_set(
        actor=march["owner"], kpi="avg_rating", product=march["products"]["alpha"], month=MARCH.start, value="4.2"
    )
    tile = _tile(march, "avg_rating")  # nobody rated Alpha in March
    assert tile.kpi.value is None
    assert tile.status.rag == Rag.GREY
    assert tile.kpi.rag is None  # the KPI registry knows green, amber and red only


def test_a_count_of_a_month_not_over_is_not_judged_against_all_of_the_previous_month(march):
    """Demos attended is a count over the month: half-way through March its change against all of
    February is shown uncoloured; once March is over, the same change is coloured."""
    from django.template.loader import render_to_string

    scope = selectors.resolve_scope(product="alpha")
    during = next(iter(selectors.adoption_tiles(scope, MARCH, as_of=AS_OF, keys=["demos"])))
    html = render_to_string("adoption/_tile.html", {"t": during})
    assert during.incomplete and '<div class="tile-change ">' in html and "vs all of the previous period" in html

    after = next(iter(selectors.adoption_tiles(scope, MARCH, as_of=datetime(2025, 4, 2, tzinfo=UTC), keys=["demos"])))
    html = render_to_string("adoption/_tile.html", {"t": after})
    assert not after.incomplete and '<div class="tile-change good">' in html and "vs previous" in html
