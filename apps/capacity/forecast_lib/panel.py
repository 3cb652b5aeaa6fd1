"""Regular series, and the panel (one row per series) that the models work on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class RegularSeries:
    values: np.ndarray  # float64, one value per step, gaps filled
    start: pd.Timestamp
    end: pd.Timestamp
    filled: int  # steps that had no sample and were filled


@dataclass(frozen=True)
class Panel:
    """Series stacked as rows and right-aligned: column ``width - 1`` holds every series' last observation."""

    values: np.ndarray  # (n, width), NaN before a series starts
    lengths: np.ndarray  # (n,) observations per series
    wall_ns: np.ndarray  # (n, width + horizon) local wall-clock time of each column, ns since the epoch
    step_ns: int
    season: int
    week: int | None  # steps per week when the season is one day, else None

    @property
    def width(self) -> int:
        return self.values.shape[1]

    def history_before(self, origin: int) -> np.ndarray:
        """Observations each series has before column ``origin``."""
        import numpy as np

        return np.clip(self.lengths - (self.width - origin), 0, None)


# Sampling steps that telemetry and billing exports use, in seconds.
COMMON_STEPS_S = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)


def infer_step(index: pd.DatetimeIndex) -> int:
    """The sampling step in ns: the median spacing, snapped to a common step when within 10% of one, so that
    jittered scrape times, gaps and duplicates do not make up an odd step."""
    import numpy as np

    diffs = np.diff(np.sort(index.as_unit("ns").asi8))
    diffs = diffs[diffs > 0]
    if diffs.size == 0:
        raise ValueError("cannot infer the sampling step from fewer than two distinct timestamps")
    median = float(np.median(diffs))
    nearest = min(COMMON_STEPS_S, key=lambda seconds: abs(seconds * 10**9 - median)) * 10**9
    return nearest if abs(nearest - median) <= 0.1 * nearest else round(median / 10**9) * 10**9


def default_season(step_ns: int) -> int:
    """Steps per day for sub-daily data, a week for daily data, otherwise no season (naive)."""
    if step_ns < DAY_NS and DAY_NS % step_ns == 0:
        return DAY_NS // step_ns
    if step_ns == DAY_NS:
        return 7
    return 1


def weekly_period(step_ns: int, season: int) -> int | None:
    return 7 * season if season * step_ns == DAY_NS else None


def regularize(series: pd.Series, *, step_ns: int, season: int) -> RegularSeries:
    """Put a series on a regular grid: each sample goes to the nearest grid point (so scrape jitter does not
    matter), samples sharing a point are averaged, and points without one are filled."""
    import numpy as np
    import pandas as pd

    if not isinstance(series.index, pd.DatetimeIndex):
        raise TypeError("series must have a DatetimeIndex")
    valid = series.astype("float64").dropna()
    if valid.empty:
        raise ValueError("series has no values")
    stamps = valid.index.as_unit("ns").asi8
    if valid.index.is_monotonic_increasing and (np.diff(stamps) == step_ns).all():
        return RegularSeries(valid.to_numpy(copy=True), valid.index[0], valid.index[-1], 0)
    valid = valid.sort_index()
    step = pd.Timedelta(step_ns, unit="ns")
    start = valid.index[0]
    if step_ns < DAY_NS and DAY_NS % step_ns == 0:
        # Anchor the grid on the local clock (a jittered first scrape at 10:00:07 starts the 10:00 step).
        wall = start.tz_localize(None)
        start += wall.round(step) - wall
    slot = np.rint((valid.index.as_unit("ns").asi8 - start.value) / step_ns).astype(np.int64)
    counts = np.bincount(slot)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.bincount(slot, weights=valid.to_numpy()) / counts
    end = start + step * int(slot[-1])
    return RegularSeries(_fill_gaps(values, season), start, end, int((counts == 0).sum()))


def _fill_gaps(values: np.ndarray, season: int) -> np.ndarray:
    import numpy as np
    import pandas as pd

    # Same time one season earlier is a better guess for a seasonal series than a straight line; ascending
    # order lets a gap longer than a season be filled from values filled before it.
    for i in np.flatnonzero(np.isnan(values)):
        if i >= season:
            values[i] = values[i - season]
    if np.isnan(values).any():
        values = pd.Series(values).interpolate(limit_direction="both").to_numpy()
    return values


def future_stamps(end: pd.Timestamp, *, step_ns: int, count: int) -> pd.DatetimeIndex:
    """The ``count`` steps after ``end``; whole-day steps follow the local calendar, so midnight stays midnight
    across a daylight-saving change."""
    import numpy as np
    import pandas as pd

    step = pd.Timedelta(step_ns, unit="ns")
    if end.tz is None or step_ns < DAY_NS:
        return pd.date_range(end + step, periods=count, freq=step)
    local = pd.date_range(end.tz_localize(None) + step, periods=count, freq=step)
    return local.tz_localize(end.tz, ambiguous=np.zeros(count, dtype=bool), nonexistent="shift_forward")


def build_panel(regular: Sequence[RegularSeries], *, step_ns: int, season: int, horizon: int) -> Panel:
    import numpy as np
    import pandas as pd

    width = max(len(r.values) for r in regular)
    values = np.full((len(regular), width), np.nan)
    wall = np.empty((len(regular), width + horizon), dtype=np.int64)
    offsets = (np.arange(width + horizon, dtype=np.int64) - (width - 1)) * step_ns
    for i, r in enumerate(regular):
        values[i, width - len(r.values) :] = r.values
        if r.end.tz is None or step_ns >= DAY_NS:
            # Whole-day steps are calendar days, so their local clock time never moves.
            wall[i] = r.end.tz_localize(None).value + offsets
        else:
            # Calendar features follow the local clock, so daylight-saving shifts move the hour of day.
            stamps = pd.to_datetime(r.end.value + offsets, utc=True).tz_convert(r.end.tz)
            wall[i] = stamps.tz_localize(None).as_unit("ns").asi8
    lengths = np.array([len(r.values) for r in regular])
    return Panel(values, lengths, wall, step_ns, season, weekly_period(step_ns, season))
