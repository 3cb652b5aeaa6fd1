from datetime import date

import pytest

from apps.core.periods import PeriodError, parse_period

TODAY = date(2026, 11, 27)


@pytest.mark.parametrize(
    ("raw", "kind", "start", "end"),
    [
        (None, "month", date(2026, 11, 1), date(2026, 12, 1)),
        ("2026-02", "month", date(2026, 2, 1), date(2026, 3, 1)),
        ("2025-12", "month", date(2025, 12, 1), date(2026, 1, 1)),
        ("2026-Q4", "quarter", date(2026, 10, 1), date(2027, 1, 1)),
        ("2026-W01", "week", date(2025, 12, 29), date(2026, 1, 5)),
        ("2026-03-15", "day", date(2026, 3, 15), date(2026, 3, 16)),
        ("2026", "year", date(2026, 1, 1), date(2027, 1, 1)),
        ("2026-10-01..2026-10-15", "custom", date(2026, 10, 1), date(2026, 10, 16)),
    ],
)
def test_parse_period(raw, kind, start, end):
    period = parse_period(raw, today=TODAY)
    assert (period.kind, period.start, period.end) == (kind, start, end)
    assert parse_period(period.key, today=TODAY) == period  # the key round-trips


@pytest.mark.parametrize(
    ("raw", "previous"),
    [
        ("2026-03", ("2026-02-01", "2026-03-01")),
        ("2026-01", ("2025-12-01", "2026-01-01")),
        ("2026-Q1", ("2025-10-01", "2026-01-01")),
        ("2026-10-01..2026-10-10", ("2026-09-21", "2026-10-01")),
    ],
)
def test_previous_period_is_the_same_length_just_before(raw, previous):
    prev = parse_period(raw, today=TODAY).previous()
    assert (prev.start.isoformat(), prev.end.isoformat()) == previous


@pytest.mark.parametrize("raw", ["2026-13", "2026-02-30", "last month", "2026-10-10..2026-10-01", "2026-Q5"])
def test_bad_period_is_refused_with_the_accepted_forms(raw):
    with pytest.raises(PeriodError) as exc:
        parse_period(raw, today=TODAY)
    assert repr(raw) in str(exc.value) or raw in str(exc.value)


@pytest.mark.django_db
def test_period_choice_follows_the_user_between_pages(exec_client):
    page = exec_client.get("/costs/?period=2026-03").content.decode()
    assert "March 2026" in page
    assert "March 2026" in exec_client.get("/capacity/").content.decode()


@pytest.mark.django_db
def test_bad_period_shows_an_error_and_falls_back_to_this_month(exec_client):
    page = exec_client.get("/costs/?period=2026-13").content.decode()
    assert "is not a real date" in page
