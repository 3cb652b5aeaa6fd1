"""Rolling-origin backtests of a chunk's series with the same pooled model that forecasts them.

A run forecasts a chunk's series together (``forecast_many``: one model learnt across the series). Backtesting
each series alone with ``forecasting.backtest`` would score a different model, one that sees a single short
history: on 90 days of daily data its boosted model has too few rows to fit and it falls back to seasonal naive,
so every series would report the naive's error rather than the forecast's. Here, at each origin, the chunk's
histories up to that origin are forecast together with ``forecast_many`` and scored exactly as
``forecasting.backtest`` scores them (MASE against the in-sample seasonal-naive error, interval coverage, width
and interval score), so a chunk of one series gives ``forecasting.backtest``'s own result.
"""

import math
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, TypeVar

from . import forecasting

if TYPE_CHECKING:
    import pandas as pd

K = TypeVar("K", bound=Hashable)


def pooled_backtest(
    series: Mapping[K, "pd.Series"],
    *,
    horizon: int,
    origins: int,
    level: float = forecasting.DEFAULT_LEVEL,
    non_negative: bool = True,
) -> dict[K, forecasting.BacktestResult | None]:
    """Backtest every series at up to ``origins`` origins, ``horizon`` apart and the last ``horizon`` before its
    end; None for a series too short for one origin. Series of one step and season are pooled per origin."""
    import numpy as np
    import pandas as pd

    from .forecast_lib.engine import min_history
    from .forecast_lib.panel import default_season, infer_step, regularize

    prepared = {}
    for key, values in series.items():
        step = infer_step(values.dropna().index)
        season = default_season(step)
        regular = regularize(values, step_ns=step, season=season)
        index = pd.date_range(regular.start, periods=regular.values.size, freq=pd.Timedelta(step, unit="ns"))
        available = (regular.values.size - min_history(season=season, horizon=horizon)) // horizon
        prepared[key] = (regular.values, index, season, min(origins, available))

    per_series: dict[K, list] = {key: [] for key in prepared}
    deepest = max((count for *_, count in prepared.values()), default=0)
    for back in range(deepest, 0, -1):  # the oldest origin first, as forecasting.backtest orders them
        histories = {}
        for key, (values, index, _, count) in prepared.items():
            if count >= back:
                origin = values.size - back * horizon
                histories[key] = pd.Series(values[:origin], index=index[:origin])
        forecasts = forecasting.forecast_many(histories, horizon=horizon, level=level, non_negative=non_negative)
        for key, fc in forecasts.items():
            values, index, season, _ = prepared[key]
            origin = values.size - back * horizon
            per_series[key].append(_score(values, index, origin, horizon, season, level, fc, np))

    return {
        key: _result(rows, horizon, prepared[key][2], level, np) if rows else None for key, rows in per_series.items()
    }


def _score(values, index, origin, horizon, season, level, fc, np) -> tuple:
    actual = values[origin : origin + horizon]
    naive = np.array(forecasting.seasonal_naive(values[:origin], season=season, horizon=horizon))
    lower, upper, point = np.array(fc.lower), np.array(fc.upper), np.array(fc.point)
    scale = forecasting.insample_naive_mae(values[:origin], season=season) or 1.0
    hits = (actual >= lower) & (actual <= upper)
    alpha = 1 - level
    penalty = (2 / alpha) * (np.clip(lower - actual, 0, None) + np.clip(actual - upper, 0, None))
    row = forecasting.BacktestOrigin(
        origin=index[origin].to_pydatetime(),
        method=fc.settings.method,
        mase_model=float(np.mean(np.abs(actual - point))) / scale,
        mase_naive=float(np.mean(np.abs(actual - naive))) / scale,
        coverage=float(hits.mean()),
    )
    return row, float(np.mean(upper - lower + penalty)) / scale, float(np.mean(upper - lower)) / scale, hits


def _result(scored: list[tuple], horizon: int, season: int, level: float, np) -> forecasting.BacktestResult:
    rows = [r for r, *_ in scored]
    mase_model = float(np.mean([r.mase_model for r in rows]))
    mase_naive = float(np.mean([r.mase_naive for r in rows]))
    return forecasting.BacktestResult(
        mase_model=mase_model,
        mase_naive=mase_naive,
        ratio=mase_model / mase_naive if mase_naive else math.inf,
        coverage=float(np.concatenate([hits for *_, hits in scored]).mean()),
        level=level,
        mean_width=float(np.mean([width for _, _, width, _ in scored])),
        interval_score=float(np.mean([score for _, score, _, _ in scored])),
        horizon=horizon,
        season=season,
        origins=tuple(rows),
    )
