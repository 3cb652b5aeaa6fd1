"""Demand forecasts per capacity pool or service, and the capacity KPIs of KPIS.md section 2.

Pure functions, no Django. pandas, numpy and scikit-learn are imported inside the functions that need them so
that web start-up stays light.

How forecasts are made (the choices follow the measurements in FORECASTING.md; check them with
``bench/forecast_accuracy.py``): for each series, the seasonal-naive and weekly-naive baselines, a gradient-boosting
model on seasonal lags, rolling means, trend and calendar features (pooled over every series of a batch), and the
mean of the model and the better baseline are scored on rolling origins at the end of the history. The best one
per series is used, with seasonal naive winning ties. Prediction intervals are split-conformal from those same
validation errors, because quantile-loss boosting under-covered. Demand forecasts are clamped at zero.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    import pandas as pd

    from .forecast_lib.engine import EngineResult
    from .forecast_lib.panel import RegularSeries

K = TypeVar("K", bound=Hashable)

DEFAULT_LEVEL = 0.8
DEFAULT_BACKTEST_ORIGINS = 28


class InsufficientHistory(ValueError):
    """A series is too short to validate a forecast for the requested horizon."""


@dataclass(frozen=True)
class ForecastSettings:
    """Everything needed to record a forecast run next to its data window."""

    method: str  # seasonal_naive, weekly_naive, gbm or gbm+naive
    season: int  # steps per season (a day for sub-daily data, a week for daily data)
    horizon: int  # steps forecast
    level: float  # nominal coverage of the interval
    step_seconds: int
    history_start: datetime
    history_end: datetime
    observations: int
    filled: int  # steps without a sample, filled before fitting
    pooled_series: int  # series the model was trained on together
    features: tuple[str, ...]
    validation_origins: int
    validation_mase: Mapping[str, float]  # per candidate, on the validation origins
    interval_quantiles: tuple[float, float]  # normalised residual quantiles behind the interval
    model_params: Mapping[str, Any]
    library_versions: Mapping[str, str]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, e.g. for a JSONField."""
        data = asdict(self)
        data["history_start"] = self.history_start.isoformat()
        data["history_end"] = self.history_end.isoformat()
        data["features"] = list(self.features)
        data["interval_quantiles"] = list(self.interval_quantiles)
        return data


@dataclass(frozen=True)
class Forecast:
    timestamps: tuple[datetime, ...]
    point: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    settings: ForecastSettings


@dataclass(frozen=True)
class BacktestOrigin:
    origin: datetime
    method: str
    mase_model: float
    mase_naive: float
    coverage: float


@dataclass(frozen=True)
class BacktestResult:
    mase_model: float  # mean over origins of the MAE scaled by the in-sample seasonal-naive MAE
    mase_naive: float  # the same for the seasonal-naive forecast
    ratio: float  # mase_model / mase_naive: below 1 beats seasonal naive
    coverage: float  # share of actuals inside the interval
    level: float
    mean_width: float  # interval width, scaled like MASE, so coverage cannot be bought silently
    interval_score: float  # mean scaled interval score (lower is better)
    horizon: int
    season: int
    origins: tuple[BacktestOrigin, ...]


@dataclass(frozen=True)
class RightSizing:
    basis: str  # "upper" or "point": which forecast line sets the peak
    peak_demand: float
    recommended_capacity: float  # peak_demand / target_utilisation
    excess_capacity: float  # provisioned - recommended, never negative
    saving: Decimal  # cost of the excess capacity over the period, never negative


# Baselines and metrics ------------------------------------------------------------------------------------------


def seasonal_naive(history: Sequence[float], *, season: int, horizon: int) -> list[float]:
    """Repeat the last full season: the value one season before each future step."""
    if len(history) < season:
        raise InsufficientHistory(f"seasonal naive needs at least one season ({season} values)")
    last = list(history[-season:])
    return [float(last[h % season]) for h in range(horizon)]


def insample_naive_mae(history: Sequence[float], *, season: int) -> float:
    """Mean absolute error of the one-season-ahead seasonal-naive forecast over the history: the MASE scale."""
    if len(history) <= season:
        raise InsufficientHistory(f"the MASE scale needs more than one season ({season} values)")
    return math.fsum(abs(history[t] - history[t - season]) for t in range(season, len(history))) / (
        len(history) - season
    )


def mase(actual: Sequence[float], predicted: Sequence[float], *, history: Sequence[float], season: int) -> float:
    """Mean absolute scaled error: forecast MAE over the in-sample seasonal-naive MAE of ``history``."""
    if len(actual) != len(predicted) or len(actual) == 0:
        raise ValueError("actual and predicted must be non-empty and of equal length")
    mae = math.fsum(abs(a - p) for a, p in zip(actual, predicted, strict=True)) / len(actual)
    scale = insample_naive_mae(history, season=season)
    if scale == 0:
        return 0.0 if mae == 0 else math.inf
    return mae / scale


# Forecasting ----------------------------------------------------------------------------------------------------


def forecast(
    series: pd.Series,
    *,
    horizon: int | None = None,
    season: int | None = None,
    level: float = DEFAULT_LEVEL,
    non_negative: bool = True,
) -> Forecast:
    """Forecast one series (a DatetimeIndex of regular samples; gaps and duplicates are tolerated).

    ``season`` defaults to a day of steps for sub-daily data and a week for daily data, ``horizon`` to one season.
    Raises ``InsufficientHistory`` below ``horizon + 3 * season`` observations.
    """
    return forecast_many({0: series}, horizon=horizon, season=season, level=level, non_negative=non_negative)[0]


def forecast_many(
    series: Mapping[K, pd.Series],
    *,
    horizon: int | None = None,
    season: int | None = None,
    level: float = DEFAULT_LEVEL,
    non_negative: bool = True,
) -> dict[K, Forecast]:
    """Forecast many series; those with the same step and season share one pooled model.

    A chunk of a larger batch can be forecast on its own: results then depend a little on which series were
    pooled together, never on series outside the chunk.
    """
    from .forecast_lib.panel import default_season, infer_step

    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    if (horizon is not None and horizon < 1) or (season is not None and season < 1):
        raise ValueError("horizon and season must be positive")
    groups: dict[tuple[int, int], list[K]] = {}
    for key, values in series.items():
        step = infer_step(values.dropna().index)
        groups.setdefault((step, season or default_season(step)), []).append(key)
    results: dict[K, Forecast] = {}
    for (step, group_season), keys in groups.items():
        results.update(
            _forecast_group(
                {key: series[key] for key in keys},
                step_ns=step,
                season=group_season,
                horizon=horizon or group_season,
                level=level,
                non_negative=non_negative,
            )
        )
    return {key: results[key] for key in series}


def _forecast_group(
    series: Mapping[K, pd.Series], *, step_ns: int, season: int, horizon: int, level: float, non_negative: bool
) -> dict[K, Forecast]:
    from .forecast_lib.engine import min_history, run
    from .forecast_lib.panel import build_panel, regularize

    regular = {key: regularize(values, step_ns=step_ns, season=season) for key, values in series.items()}
    needed = min_history(season=season, horizon=horizon)
    short = [key for key, r in regular.items() if len(r.values) < needed]
    if short:
        raise InsufficientHistory(
            f"{len(short)} series have fewer than {needed} observations (horizon {horizon} + three seasons of "
            f"{season}): {short[:5]}"
        )
    panel = build_panel(list(regular.values()), step_ns=step_ns, season=season, horizon=horizon)
    result = run(panel, horizon=horizon, level=level, non_negative=non_negative)
    return {
        key: _wrap(r, result, i, step_ns=step_ns, season=season, horizon=horizon, level=level, pooled=len(regular))
        for i, (key, r) in enumerate(regular.items())
    }


def _wrap(
    regular: RegularSeries,
    result: EngineResult,
    i: int,
    *,
    step_ns: int,
    season: int,
    horizon: int,
    level: float,
    pooled: int,
) -> Forecast:
    import pandas as pd
    import sklearn

    from .forecast_lib.engine import GBM_PARAMS, MAX_TRAIN_STEPS
    from .forecast_lib.panel import future_stamps

    scale = insample_naive_mae(regular.values.tolist(), season=season)
    validation = {
        name: round(float(mae[i]) / scale, 4) if scale else (0.0 if mae[i] == 0 else math.inf)
        for name, mae in result.candidate_mae.items()
        if math.isfinite(mae[i])
    }
    settings = ForecastSettings(
        method=result.method[i],
        season=season,
        horizon=horizon,
        level=level,
        step_seconds=step_ns // 10**9,
        history_start=regular.start.to_pydatetime(),
        history_end=regular.end.to_pydatetime(),
        observations=len(regular.values),
        filled=regular.filled,
        pooled_series=pooled,
        features=result.features,
        validation_origins=result.origins,
        validation_mase=validation,
        interval_quantiles=(round(result.quantiles[0], 4), round(result.quantiles[1], 4)),
        model_params={**GBM_PARAMS, "max_train_steps": MAX_TRAIN_STEPS},
        library_versions={"scikit-learn": sklearn.__version__, "pandas": pd.__version__},
    )
    timestamps = future_stamps(regular.end, step_ns=step_ns, count=horizon)
    return Forecast(
        timestamps=tuple(timestamps.to_pydatetime()),
        point=tuple(result.point[i].tolist()),
        lower=tuple(result.lower[i].tolist()),
        upper=tuple(result.upper[i].tolist()),
        settings=settings,
    )


def backtest(
    series: pd.Series,
    *,
    horizon: int | None = None,
    season: int | None = None,
    origins: int | None = None,
    level: float = DEFAULT_LEVEL,
    non_negative: bool = True,
) -> BacktestResult:
    """Rolling-origin evaluation of ``forecast`` on the end of ``series``.

    Origins are ``horizon`` apart, the last one ``horizon`` before the end; at each, ``forecast`` sees only the
    history before it. MASE at an origin is scaled by the seasonal-naive MAE of that history.
    """
    import numpy as np
    import pandas as pd

    from .forecast_lib.engine import min_history
    from .forecast_lib.panel import default_season, infer_step, regularize

    step = infer_step(series.dropna().index)
    season = season or default_season(step)
    horizon = horizon or season
    regular = regularize(series, step_ns=step, season=season)
    values = regular.values
    index = pd.date_range(regular.start, periods=values.size, freq=pd.Timedelta(step, unit="ns"))
    available = (values.size - min_history(season=season, horizon=horizon)) // horizon
    count = min(origins or DEFAULT_BACKTEST_ORIGINS, available)
    if count < 1:
        raise InsufficientHistory("series too short for a backtest origin")
    alpha = 1 - level
    rows, scores, widths, inside = [], [], [], []
    for origin in range(values.size - count * horizon, values.size, horizon):
        history = pd.Series(values[:origin], index=index[:origin])
        fc = forecast(history, horizon=horizon, season=season, level=level, non_negative=non_negative)
        actual = values[origin : origin + horizon]
        naive = np.array(seasonal_naive(values[:origin], season=season, horizon=horizon))
        lower, upper = np.array(fc.lower), np.array(fc.upper)
        scale = insample_naive_mae(values[:origin], season=season) or 1.0
        hits = (actual >= lower) & (actual <= upper)
        rows.append(
            BacktestOrigin(
                origin=index[origin].to_pydatetime(),
                method=fc.settings.method,
                mase_model=float(np.mean(np.abs(actual - np.array(fc.point)))) / scale,
                mase_naive=float(np.mean(np.abs(actual - naive))) / scale,
                coverage=float(hits.mean()),
            )
        )
        penalty = (2 / alpha) * (np.clip(lower - actual, 0, None) + np.clip(actual - upper, 0, None))
        scores.append(float(np.mean(upper - lower + penalty)) / scale)
        widths.append(float(np.mean(upper - lower)) / scale)
        inside.append(hits)
    mase_model = float(np.mean([r.mase_model for r in rows]))
    mase_naive = float(np.mean([r.mase_naive for r in rows]))
    return BacktestResult(
        mase_model=mase_model,
        mase_naive=mase_naive,
        ratio=mase_model / mase_naive if mase_naive else math.inf,
        coverage=float(np.concatenate(inside).mean()),
        level=level,
        mean_width=float(np.mean(widths)),
        interval_score=float(np.mean(scores)),
        horizon=horizon,
        season=season,
        origins=tuple(rows),
    )


# Capacity KPIs (KPIS.md section 2) ------------------------------------------------------------------------------


def utilisation(
    used: Sequence[float], provisioned: Sequence[float], *, durations: Sequence[float] | None = None
) -> float | None:
    """Time-weighted utilisation ``sum U(t) / sum P(t)``; ``None`` when nothing was provisioned.

    Samples are taken as equally long unless ``durations`` says how long each one lasted.
    """
    if len(used) != len(provisioned) or (durations is not None and len(durations) != len(used)):
        raise ValueError("used, provisioned and durations must have the same length")
    weights = durations if durations is not None else [1.0] * len(used)
    total = math.fsum(float(p) * w for p, w in zip(provisioned, weights, strict=True))
    if total == 0:
        return None
    return math.fsum(float(u) * w for u, w in zip(used, weights, strict=True)) / total


def waste_cost(cost: Decimal, utilisation: float | Decimal, target_utilisation: float | Decimal = 1.0) -> Decimal:
    """``C * max(0, 1 - utilisation / target_utilisation)``: the cost of capacity idle beyond the allowed headroom."""
    if not 0 < target_utilisation <= 1:
        raise ValueError("target_utilisation must be in (0, 1]")
    with localcontext() as ctx:
        ctx.prec = 60  # costs carry up to 38 digits; the default 28 would round them
        idle = 1 - Decimal(str(utilisation)) / Decimal(str(target_utilisation))
        return cost * max(Decimal(0), idle)


def days_to_exhaustion(forecast: Forecast, provisioned: float | Decimal | Sequence[float]) -> int | None:
    """Day of the horizon (1 = the first day after the history) on which the interval's upper bound first reaches
    provisioned capacity; ``None`` if it never does within the horizon.

    ``provisioned`` is one capacity for the whole horizon or one per forecast step.
    """
    if isinstance(provisioned, numbers.Number):
        capacity = [float(provisioned)] * len(forecast.upper)
    else:
        capacity = [float(value) for value in provisioned]
    if len(capacity) != len(forecast.upper):
        raise ValueError("provisioned must be a number or have one value per forecast step")
    end = forecast.settings.history_end
    for timestamp, upper, cap in zip(forecast.timestamps, forecast.upper, capacity, strict=True):
        if upper >= cap:
            return math.ceil((timestamp - end).total_seconds() / 86_400)
    return None


def right_sizing(
    forecast: Forecast,
    *,
    provisioned: float | Decimal,
    target_utilisation: float | Decimal = 1.0,
    unit_price: Decimal | None = None,
    hours: float | Decimal | None = None,
    period_cost: Decimal | None = None,
    basis: Literal["upper", "point"] = "upper",
) -> RightSizing:
    """Capacity above forecast peak demand / target utilisation, and what it costs over the next period.

    The peak is taken from the interval's upper bound by default, so the recommendation keeps the headroom the
    forecast's own uncertainty asks for; ``basis="point"`` uses the point forecast. Price the excess either with
    ``unit_price`` per unit of capacity per hour over ``hours`` (default: the forecast horizon), or as its share
    of the pool's ``period_cost``.
    """
    if (unit_price is None) == (period_cost is None):
        raise ValueError("give exactly one of unit_price or period_cost")
    if not 0 < target_utilisation <= 1:
        raise ValueError("target_utilisation must be in (0, 1]")
    line = forecast.upper if basis == "upper" else forecast.point
    peak = max(line)
    recommended = peak / float(target_utilisation)
    excess = max(0.0, float(provisioned) - recommended)
    with localcontext() as ctx:
        ctx.prec = 60
        if unit_price is not None:
            period_hours = (
                hours if hours is not None else forecast.settings.horizon * forecast.settings.step_seconds / 3600
            )
            saving = Decimal(str(excess)) * unit_price * Decimal(str(period_hours))
        else:
            share = Decimal(str(excess)) / Decimal(str(provisioned)) if provisioned > 0 else Decimal(0)
            saving = period_cost * share
    return RightSizing(
        basis=basis,
        peak_demand=peak,
        recommended_capacity=recommended,
        excess_capacity=excess,
        saving=max(Decimal(0), saving),
    )
