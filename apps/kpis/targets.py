"""Status of a KPI against its monthly target: progress, red/amber/green and a month-end projection.

Pure functions on numbers, so any KPI of any app can use them and every rule is tested by hand.

**Two kinds of KPI.** A *cumulative* KPI counts up from zero each month (demos attended, trial
starts, distinct active users so far); a *level* KPI is an average, rate or score that is meaningful
at any moment (average rating, NPS, activation rate, unit cost).

**Projection** of the month-end value:

- cumulative: ``current + pace x remaining days``, where ``pace`` is the recent daily increase (the
  caller passes the last seven days' increase; without it, the average since the month began, which
  makes the projection the pro-rata run rate ``current / elapsed share``);
- level: the month-to-date value itself (an average over the days so far is the best estimate of the
  month's average);
- a month that has ended is projected at its final value; a month that has not begun has no
  projection.

**Red/amber/green** compares the projection with the target, in the KPI's direction (agreed in
advance, numeric, as in ClearPoint's scheme, see shared ADOPTION.md section 8):

- up is good:   green when projected >= target; amber when projected >= target - 10 % of |target|;
  red below.
- down is good: green when projected <= target; amber when projected <= target + 10 % of |target|;
  red above.
- grey when there is a target but no data yet (never green); ``None`` before the month begins.

For a cumulative KPI with the default pace this is exactly "green at >= 100 % of the pro-rata target,
amber at >= 90 %, red below", since ``current / (target x elapsed) = projected / target``.

**Progress** (display only) is ``(current - start) / (target - start)`` clamped to 0..1, with
``start`` 0 for cumulative KPIs and the previous month's value for level KPIs; when ``target ==
start`` it is 1 if the target is met, else 0.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from apps.core.periods import Period

from .registry import Direction

AMBER_TOLERANCE = Decimal("0.10")
SECONDS_PER_DAY = Decimal(86_400)


class Accumulation(StrEnum):
    CUMULATIVE = "cumulative"
    LEVEL = "level"


class Rag(StrEnum):
    GREEN = "green"
    AMBER = "amber"
    RED = "red"
    GREY = "grey"  # a target, but no data to judge it by


@dataclass(frozen=True)
class TargetStatus:
    target: Decimal
    direction: Direction
    current: Decimal | None
    projected: Decimal | None
    progress: Decimal | None  # 0..1
    rag: Rag | None  # None: the month has not started
    elapsed_share: Decimal  # 0..1 of the month gone

    @property
    def reaches(self) -> bool | None:
        """Whether the projection meets the target by month end (None when there is nothing to project)."""
        if self.projected is None:
            return None
        return meets(self.projected, self.target, self.direction)

    @property
    def complete(self) -> bool:
        return self.elapsed_share >= 1

    @property
    def progress_percent(self) -> Decimal | None:
        return None if self.progress is None else (self.progress * 100).quantize(Decimal("1"))


def meets(value: Decimal, target: Decimal, direction: Direction) -> bool:
    return value >= target if direction == Direction.UP_IS_GOOD else value <= target


def rag_for(value: Decimal | None, target: Decimal, direction: Direction) -> Rag:
    """Colour of ``value`` against ``target``: met is green, within 10 % of |target| short is amber."""
    if value is None:
        return Rag.GREY
    if meets(value, target, direction):
        return Rag.GREEN
    band = abs(target) * AMBER_TOLERANCE
    near = value >= target - band if direction == Direction.UP_IS_GOOD else value <= target + band
    return Rag.AMBER if near else Rag.RED


def progress(
    current: Decimal | None, target: Decimal, *, start: Decimal | None, direction: Direction
) -> Decimal | None:
    """``(current - start) / (target - start)`` clamped to 0..1; lower-is-better targets have start > target."""
    if current is None or start is None:
        return None
    if target == start:
        return Decimal(1) if meets(current, target, direction) else Decimal(0)
    share = (current - start) / (target - start)
    return min(Decimal(1), max(Decimal(0), share))


def elapsed_days(period: Period, as_of: datetime) -> Decimal:
    """Days of ``period`` gone by ``as_of`` (fractional), between 0 and the period's length."""
    seconds = Decimal(str((as_of - period.start_dt).total_seconds()))
    return min(Decimal(period.days), max(Decimal(0), seconds / SECONDS_PER_DAY))


def project(
    *,
    current: Decimal,
    accumulation: Accumulation,
    elapsed: Decimal,
    total_days: int,
    pace_per_day: Decimal | None = None,
) -> Decimal | None:
    """The month-end value if the current pace holds (see the module docstring)."""
    if elapsed <= 0:
        return None
    if elapsed >= total_days or accumulation == Accumulation.LEVEL:
        return current
    pace = pace_per_day if pace_per_day is not None else current / elapsed
    return current + pace * (Decimal(total_days) - elapsed)


def evaluate(
    *,
    target: Decimal,
    direction: Direction,
    accumulation: Accumulation,
    current: Decimal | None,
    elapsed: Decimal,
    total_days: int,
    pace_per_day: Decimal | None = None,
    start: Decimal | None = None,
) -> TargetStatus:
    """Status of ``current`` against ``target`` with ``elapsed`` of ``total_days`` days gone.

    ``start`` is where progress is measured from (ignored for cumulative KPIs, which start at 0).
    """
    share = min(Decimal(1), max(Decimal(0), elapsed / Decimal(total_days)))
    if accumulation == Accumulation.CUMULATIVE:
        start = Decimal(0)
    if current is None:
        return TargetStatus(target, direction, None, None, None, Rag.GREY if elapsed > 0 else None, share)
    projected = project(
        current=current, accumulation=accumulation, elapsed=elapsed, total_days=total_days, pace_per_day=pace_per_day
    )
    rag = None if projected is None else rag_for(projected, target, direction)
    return TargetStatus(
        target=target,
        direction=direction,
        current=current,
        projected=projected,
        progress=progress(current, target, start=start, direction=direction),
        rag=rag,
        elapsed_share=share,
    )
