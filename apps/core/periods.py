"""Reporting periods: a calendar month by default, or a day, ISO week, quarter, year or custom range.

A period is half-open, ``[start, end)``, like FOCUS charge periods, so consecutive periods never
overlap and sums over them add up.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from dateutil.relativedelta import relativedelta


class PeriodError(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    kind: str  # day | week | month | quarter | year | custom
    start: date
    end: date  # exclusive

    @property
    def key(self) -> str:
        match self.kind:
            case "day":
                return self.start.isoformat()
            case "week":
                year, week, _ = self.start.isocalendar()
                return f"{year}-W{week:02d}"
            case "month":
                return f"{self.start:%Y-%m}"
            case "quarter":
                return f"{self.start.year}-Q{(self.start.month - 1) // 3 + 1}"
            case "year":
                return str(self.start.year)
        return f"{self.start.isoformat()}..{(self.end - timedelta(days=1)).isoformat()}"

    @property
    def label(self) -> str:
        match self.kind:
            case "day":
                return f"{self.start:%-d %b %Y}"
            case "week":
                return f"Week {self.key[-2:]}, {self.start.isocalendar()[0]}"
            case "month":
                return f"{self.start:%B %Y}"
            case "quarter":
                return f"Q{(self.start.month - 1) // 3 + 1} {self.start.year}"
            case "year":
                return str(self.start.year)
        return f"{self.start:%-d %b %Y} to {self.end - timedelta(days=1):%-d %b %Y}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def start_dt(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def end_dt(self) -> datetime:
        return datetime.combine(self.end, time.min, tzinfo=UTC)

    def previous(self) -> "Period":
        match self.kind:
            case "month" | "quarter" | "year":
                step = {"month": 1, "quarter": 3, "year": 12}[self.kind]
                start = self.start - relativedelta(months=step)
                return Period(self.kind, start, self.start)
        return Period(self.kind, self.start - timedelta(days=self.days), self.start)

    def __str__(self) -> str:
        return self.key


def month_of(day: date) -> Period:
    start = day.replace(day=1)
    return Period("month", start, start + relativedelta(months=1))


_PATTERNS = [
    (re.compile(r"^(\d{4})-(\d{2})-(\d{2})\.\.(\d{4})-(\d{2})-(\d{2})$"), "custom"),
    (re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"), "day"),
    (re.compile(r"^(\d{4})-W(\d{2})$"), "week"),
    (re.compile(r"^(\d{4})-(\d{2})$"), "month"),
    (re.compile(r"^(\d{4})-Q([1-4])$"), "quarter"),
    (re.compile(r"^(\d{4})$"), "year"),
]


def parse_period(value: str | None, *, today: date) -> Period:
    """Parse ``2026-10``, ``2026-Q3``, ``2026-W40``, ``2026-10-05``, ``2026`` or ``2026-10-01..2026-10-15``.

    An empty value means the current month. Anything else raises PeriodError with the forms accepted.
    """
    if not value:
        return month_of(today)
    value = value.strip()
    try:
        for pattern, kind in _PATTERNS:
            m = pattern.match(value)
            if not m:
                continue
            g = [int(x) for x in m.groups()]
            match kind:
                case "custom":
                    start, last = date(g[0], g[1], g[2]), date(g[3], g[4], g[5])
                    if last < start:
                        raise PeriodError(f"period {value!r}: the end is before the start")
                    return Period("custom", start, last + timedelta(days=1))
                case "day":
                    start = date(g[0], g[1], g[2])
                    return Period("day", start, start + timedelta(days=1))
                case "week":
                    start = date.fromisocalendar(g[0], g[1], 1)
                    return Period("week", start, start + timedelta(days=7))
                case "month":
                    return month_of(date(g[0], g[1], 1))
                case "quarter":
                    start = date(g[0], 3 * (g[1] - 1) + 1, 1)
                    return Period("quarter", start, start + relativedelta(months=3))
                case "year":
                    return Period("year", date(g[0], 1, 1), date(g[0] + 1, 1, 1))
    except ValueError as exc:
        if isinstance(exc, PeriodError):
            raise
        raise PeriodError(f"period {value!r} is not a real date: {exc}") from None
    raise PeriodError(
        f"period {value!r} is not understood; use YYYY-MM (month), YYYY-Qn (quarter), YYYY-Www (ISO week), "
        "YYYY-MM-DD (day), YYYY (year) or YYYY-MM-DD..YYYY-MM-DD (range)"
    )


def recent_months(*, today: date, count: int = 13) -> list[Period]:
    current = month_of(today)
    return [
        Period("month", current.start - relativedelta(months=i), current.end - relativedelta(months=i))
        for i in range(count)
    ]
