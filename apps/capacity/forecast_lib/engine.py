"""Features, the gradient-boosting model, the baselines, per-series selection and conformal intervals.

Everything works on a ``Panel`` so that one pooled model serves a whole batch of series. Targets and lag
features are expressed relative to the seasonal-naive value and divided by each series' mean level: series of
any size then share one model, and a trend shows up as a steady seasonal difference that trees can learn
(trees cannot extrapolate a level they have never seen).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .panel import DAY_NS, Panel

if TYPE_CHECKING:
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor

# Absolute loss targets the median, matching MASE, and keeps one-off spikes or outages in the training window
# from dragging the fit. Small trees and a fixed seed keep fits fast and repeatable.
GBM_PARAMS: dict[str, Any] = {
    "loss": "absolute_error",
    "learning_rate": 0.1,
    "max_iter": 100,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
    "early_stopping": False,
    "random_state": 0,
}
MAX_TRAIN_STEPS = 4000  # per series: bounds fit time on long hourly histories
MIN_TRAIN_SEASONS = 3
# A day-of-week feature learnt from under three weeks turned a one-off weekday outage into a weekly dip.
WEEKLY_FEATURES_MIN_WEEKS = 3
MONTH_FEATURE_MIN_DAYS = 400  # month of year means nothing until a year has been seen

SEASONAL_NAIVE = "seasonal_naive"
WEEKLY_NAIVE = "weekly_naive"
GBM = "gbm"
BLEND = "gbm+naive"  # mean of the model and the better of the two naive forecasts


@dataclass(frozen=True)
class ValidationPlan:
    origins: int
    refit_every: int


def validation_plan(panel: Panel) -> ValidationPlan:
    # Sub-daily: a daily origin over the last two weeks, refitted weekly. Daily and coarser: four weekly origins.
    return ValidationPlan(14, 7) if panel.week else ValidationPlan(4, 4)


def min_history(*, season: int, horizon: int) -> int:
    """Observations needed for at least one validation origin."""
    return horizon + MIN_TRAIN_SEASONS * season


@dataclass(frozen=True)
class EngineResult:
    point: np.ndarray  # (n, horizon)
    lower: np.ndarray
    upper: np.ndarray
    method: list[str]  # per series
    candidate_mae: dict[str, np.ndarray]  # validation MAE per candidate, (n,) each
    quantiles: tuple[float, float]  # normalised residual quantiles of the interval
    features: tuple[str, ...]
    origins: int


def feature_names(panel: Panel) -> tuple[str, ...]:
    names = ["base", *(f"lag_{k}" for k in _lag_steps(panel)), "mean_season", "mean_long", "trend"]
    names += ["recent_change", "lead", "phase"]
    if panel.week:
        names.append("day_of_week")
    if _use_month(panel):
        names.append("month")
    return tuple(names)


def _lag_steps(panel: Panel) -> tuple[int, ...]:
    s, w = panel.season, panel.week
    return (2 * s, w, 2 * w) if w else (2 * s, 3 * s, 4 * s)


def _is_weekly(panel: Panel, lag: int) -> bool:
    return panel.week is not None and lag % panel.week == 0


def _use_month(panel: Panel) -> bool:
    return int(panel.lengths.max()) * panel.step_ns >= MONTH_FEATURE_MIN_DAYS * DAY_NS


def _lag(work: np.ndarray, cols: np.ndarray, k: int) -> np.ndarray:
    import numpy as np

    out = np.full((work.shape[0], cols.size), np.nan)
    idx = cols - k
    ok = idx >= 0
    out[:, ok] = work[:, idx[ok]]
    return out


def _window_mean(csum: np.ndarray, ccount: np.ndarray, end: np.ndarray, length: int) -> np.ndarray:
    """Mean of the ``length`` values ending at column ``end`` (inclusive), ignoring NaN."""
    import numpy as np

    hi = np.clip(end + 1, 0, None)
    lo = np.clip(end + 1 - length, 0, None)
    total = csum[:, hi] - csum[:, lo]
    count = ccount[:, hi] - ccount[:, lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def features(
    panel: Panel, work: np.ndarray, cols: np.ndarray, *, scale: np.ndarray, history: np.ndarray, origin: int
) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows (series-major) for target columns ``cols``, and the seasonal-naive base (n, len(cols)).

    Targets are grouped in seasons starting at ``origin`` (plus or minus whole seasons); features of a target use
    only values before its season's start, so a whole season can be predicted at once from known values.
    """
    import numpy as np

    s, step = panel.season, panel.step_ns
    finite = np.isfinite(work)
    zeros = np.zeros((work.shape[0], 1))
    csum = np.concatenate([zeros, np.cumsum(np.where(finite, work, 0.0), axis=1)], axis=1)
    ccount = np.concatenate([zeros, np.cumsum(finite, axis=1)], axis=1)
    per_series = scale[:, None]
    base = _lag(work, cols, s)

    weekly_ok = (history >= WEEKLY_FEATURES_MIN_WEEKS * (panel.week or 0))[:, None]
    columns = [base / per_series]
    for k in _lag_steps(panel):
        lagged = (_lag(work, cols, k) - base) / per_series
        columns.append(np.where(weekly_ok, lagged, np.nan) if _is_weekly(panel, k) else lagged)
    season_mean = _window_mean(csum, ccount, cols - s, s)
    columns.append((season_mean - base) / per_series)
    columns.append((_window_mean(csum, ccount, cols - s, panel.week or 4 * s) - base) / per_series)
    columns.append((season_mean - _window_mean(csum, ccount, cols - 2 * s, s)) / per_series)
    # The latest values against the same steps a season earlier: a level shift shows here before any lag has it.
    block_start = cols - (cols - origin) % s
    recent = max(1, s // 6)
    latest = _window_mean(csum, ccount, block_start - 1, recent)
    columns.append((latest - _window_mean(csum, ccount, block_start - 1 - s, recent)) / per_series)
    columns.append(np.broadcast_to(cols - block_start, base.shape))

    wall = panel.wall_ns[:, cols]
    days = wall // DAY_NS
    day_of_week = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    if s * step == DAY_NS:  # phase: the step's place in its season, on the local clock where the season is one
        columns.append((wall % DAY_NS) // step)
    elif s * step == 7 * DAY_NS:
        columns.append((day_of_week * DAY_NS + wall % DAY_NS) // step)
    else:
        columns.append(np.broadcast_to(cols % s, wall.shape))
    if panel.week:
        columns.append(np.where(weekly_ok, day_of_week, np.nan))
    if _use_month(panel):
        month = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12
        year_ok = (history * step >= MONTH_FEATURE_MIN_DAYS * DAY_NS)[:, None]
        columns.append(np.where(year_ok, month, np.nan))
    matrix = np.stack([np.asarray(c, dtype="float64").reshape(-1) for c in columns], axis=1)
    return matrix, base


def _categorical(panel: Panel) -> list[bool]:
    # The booster takes at most 255 categories: a finer phase (5-minute steps in a day) stays numeric.
    categorical = {"day_of_week", "month"} | ({"phase"} if panel.season <= 255 else set())
    return [name in categorical for name in feature_names(panel)]


def series_scale(values: np.ndarray) -> np.ndarray:
    import numpy as np

    scale = _nanmean(np.abs(values), axis=(1,), empty=1.0)
    return np.where(scale > 0, scale, 1.0)


def fit(panel: Panel, cutoff: int) -> HistGradientBoostingRegressor | None:
    """Fit the pooled model on every series' observations before column ``cutoff``."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor

    s = panel.season
    cols = np.arange(max(s, cutoff - MAX_TRAIN_STEPS), cutoff)
    if cols.size == 0:
        return None
    work = panel.values[:, :cutoff]
    scale = series_scale(work)
    x, base = features(panel, work, cols, scale=scale, history=panel.history_before(cutoff), origin=cutoff)
    target = ((work[:, cols] - base) / scale[:, None]).reshape(-1)
    keep = np.isfinite(target)
    if keep.sum() < 2 * GBM_PARAMS["min_samples_leaf"]:
        return None
    x = x[keep]
    # A feature no training row has (weekly lags of a short history) cannot be binned; a constant is never split on.
    x[:, np.isnan(x).all(axis=0)] = 0.0
    model = HistGradientBoostingRegressor(**GBM_PARAMS, categorical_features=_categorical(panel))
    return model.fit(x, target[keep])


def predict(panel: Panel, model: HistGradientBoostingRegressor | None, origin: int, horizon: int) -> np.ndarray:
    """Model forecast of ``horizon`` steps from column ``origin``, a season at a time (later seasons use earlier
    predictions as their lags)."""
    import numpy as np

    n = panel.values.shape[0]
    if model is None:
        return np.full((n, horizon), np.nan)
    work = np.full((n, origin + horizon), np.nan)
    work[:, :origin] = panel.values[:, :origin]
    scale = series_scale(panel.values[:, :origin])
    history = panel.history_before(origin)
    for first in range(0, horizon, panel.season):
        cols = origin + np.arange(first, min(first + panel.season, horizon))
        x, base = features(panel, work, cols, scale=scale, history=history, origin=origin)
        work[:, cols] = base + model.predict(x).reshape(n, -1) * scale[:, None]
    return work[:, origin:]


def naive(values: np.ndarray, origin: int, horizon: int, lag: int) -> np.ndarray:
    """Repeat the last ``lag`` observations before ``origin``."""
    import numpy as np

    idx = origin - lag + np.arange(horizon) % lag
    out = np.full((values.shape[0], horizon), np.nan)
    ok = idx >= 0
    out[:, ok] = values[:, idx[ok]]
    return out


def _candidates(
    panel: Panel, model: HistGradientBoostingRegressor | None, origin: int, horizon: int
) -> dict[str, np.ndarray]:
    import numpy as np

    seasonal = naive(panel.values, origin, horizon, panel.season)
    out = {SEASONAL_NAIVE: seasonal, GBM: predict(panel, model, origin, horizon)}
    out[WEEKLY_NAIVE] = (
        naive(panel.values, origin, horizon, panel.week) if panel.week else np.full_like(seasonal, np.nan)
    )
    return out


def _validate(panel: Panel, horizon: int) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """Rolling-origin forecasts on the end of the history: actuals and candidate forecasts, each (n, V, horizon)."""
    import numpy as np

    plan = validation_plan(panel)
    lowest = MIN_TRAIN_SEASONS * panel.season
    origins = list(range(panel.width - horizon, lowest - 1, -panel.season))[: plan.origins][::-1]
    if not origins:
        raise ValueError("history too short for a validation origin")
    actual: list[np.ndarray] = []
    predicted: dict[str, list[np.ndarray]] = {}
    model = None
    for i, origin in enumerate(origins):
        if i % plan.refit_every == 0:
            model = fit(panel, origin)  # later origins of the group reuse it: it has seen only older data
        # A series with too little history at this origin takes no part in its scoring.
        short = panel.history_before(origin) < lowest
        truth = panel.values[:, origin : origin + horizon].copy()
        truth[short] = np.nan
        actual.append(truth)
        for name, forecast in _candidates(panel, model, origin, horizon).items():
            predicted.setdefault(name, []).append(forecast)
    stacked = {name: np.stack(f, axis=1) for name, f in predicted.items()}
    return np.stack(actual, axis=1), stacked, len(origins)


def _mae(actual: np.ndarray, predicted: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """MAE per series over the scored cells; infinite where a candidate has no forecast for some of them."""
    import numpy as np

    err = np.abs(actual - predicted)
    missing = (scored & ~np.isfinite(predicted)).any(axis=(1, 2))
    total = np.where(scored, np.nan_to_num(err), 0.0).sum(axis=(1, 2))
    count = scored.sum(axis=(1, 2))
    mae = np.where(count > 0, total / np.maximum(count, 1), np.inf)
    return np.where(missing, np.inf, mae)


def _blend(predictions: dict[str, np.ndarray], mae: dict[str, np.ndarray]) -> np.ndarray:
    import numpy as np

    weekly_better = (mae[WEEKLY_NAIVE] < mae[SEASONAL_NAIVE]).reshape((-1,) + (1,) * (predictions[GBM].ndim - 1))
    better_naive = np.where(weekly_better, predictions[WEEKLY_NAIVE], predictions[SEASONAL_NAIVE])
    return (predictions[GBM] + better_naive) / 2


def _nanmean(values: np.ndarray, *, axis: tuple[int, ...], empty: float) -> np.ndarray:
    import numpy as np

    finite = np.isfinite(values)
    count = finite.sum(axis=axis)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), empty)


def interval_offsets(
    errors: np.ndarray, *, level: float, season: int
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Split-conformal offsets (n, horizon) from validation errors (actual - forecast), shape (n, V, horizon).

    Errors are normalised by each series' mean absolute error and by a lead-time profile shared by the panel,
    then one pair of quantiles is taken over all of them: per-series widths without needing many origins each.
    """
    import numpy as np

    abs_err = np.abs(errors)
    per_series = _nanmean(abs_err, axis=(1, 2), empty=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = abs_err / np.where(per_series > 0, per_series, np.nan)[:, None, None]
    profile = _nanmean(relative, axis=(0, 1), empty=1.0)
    # Few origins make the lead-time profile noisy: smooth it over a season's worth of neighbouring steps.
    width = max(1, min(season, profile.size) // 4)
    kernel = np.ones(2 * width + 1) / (2 * width + 1)
    padded = np.pad(profile, width, mode="edge")
    profile = np.convolve(padded, kernel, mode="valid")
    spread = per_series[:, None] * profile[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = errors / spread[:, None, :]
    normalised = normalised[np.isfinite(normalised)]
    if normalised.size == 0:
        return np.zeros_like(spread), np.zeros_like(spread), (0.0, 0.0)
    alpha = 1.0 - level
    size = normalised.size
    # Finite-sample correction of split conformal: the ceil((n + 1)(1 - a/2)) / n empirical quantile.
    hi_level = min(1.0, float(np.ceil((size + 1) * (1 - alpha / 2))) / size)
    # An interval always contains its own point forecast, even when the validation errors leant to one side.
    q_lo = min(0.0, float(np.quantile(normalised, 1.0 - hi_level)))
    q_hi = max(0.0, float(np.quantile(normalised, hi_level)))
    return q_lo * spread, q_hi * spread, (q_lo, q_hi)


def run(panel: Panel, *, horizon: int, level: float, non_negative: bool) -> EngineResult:
    """Validate the candidates, pick one per series, refit on all data and forecast with intervals."""
    import sklearn.ensemble  # noqa: F401 - its OpenMP runtime must be loaded for the limit below to reach it
    from threadpoolctl import threadpool_limits

    # One thread: batches are parallelised across worker processes instead. Per-tree OpenMP start-up costs more
    # than it saves on these small fits, and waiting threads burnt several times the CPU on a busy host.
    with threadpool_limits(limits=1, user_api="openmp"):
        return _run(panel, horizon=horizon, level=level, non_negative=non_negative)


def _run(panel: Panel, *, horizon: int, level: float, non_negative: bool) -> EngineResult:
    import numpy as np

    actual, predicted, origins = _validate(panel, horizon)
    scored = np.isfinite(actual) & np.isfinite(predicted[SEASONAL_NAIVE])
    mae = {name: _mae(actual, p, scored) for name, p in predicted.items()}
    predicted[BLEND] = _blend(predicted, mae)
    mae[BLEND] = _mae(actual, predicted[BLEND], scored)
    names = [SEASONAL_NAIVE, WEEKLY_NAIVE, GBM, BLEND]  # ties go to the simpler method
    choice = np.argmin(np.stack([mae[name] for name in names], axis=1), axis=1)
    chosen = np.stack([predicted[name] for name in names], axis=0)[choice, np.arange(choice.size)]
    low, high, quantiles = interval_offsets(actual - chosen, level=level, season=panel.season)

    needs_model = np.isin(choice, [names.index(GBM), names.index(BLEND)]).any()
    model = fit(panel, panel.width) if needs_model else None
    final = _candidates(panel, model, panel.width, horizon)
    final[BLEND] = _blend(final, mae)
    point = np.stack([final[name] for name in names], axis=0)[choice, np.arange(choice.size)]
    lower, upper = point + low, point + high
    if non_negative:
        point, lower, upper = (np.clip(a, 0.0, None) for a in (point, lower, upper))
    return EngineResult(
        point=point,
        lower=lower,
        upper=upper,
        method=[names[c] for c in choice],
        candidate_mae=mae,
        quantiles=quantiles,
        features=feature_names(panel),
        origins=origins,
    )
