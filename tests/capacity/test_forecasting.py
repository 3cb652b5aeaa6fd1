import json
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from apps.capacity.forecasting import (
    Forecast,
    ForecastSettings,
    InsufficientHistory,
    backtest,
    days_to_exhaustion,
    forecast,
    forecast_many,
    insample_naive_mae,
    mase,
    right_sizing,
    seasonal_naive,
    utilisation,
    waste_cost,
)

START = datetime(2026, 3, 1)


def make_forecast(upper: list[float], *, point: list[float] | None = None, step: timedelta = timedelta(days=1)):
    """A hand-made forecast starting one step after ``START``."""
    settings = ForecastSettings(
        method="seasonal_naive",
        season=7,
        horizon=len(upper),
        level=0.8,
        step_seconds=int(step.total_seconds()),
        history_start=START - timedelta(days=60),
        history_end=START,
        observations=60,
        filled=0,
        pooled_series=1,
        features=(),
        validation_origins=4,
        validation_mase={"seasonal_naive": 1.0},
        interval_quantiles=(-1.0, 1.0),
        model_params={},
        library_versions={},
    )
    return Forecast(
        timestamps=tuple(START + step * (i + 1) for i in range(len(upper))),
        point=tuple(point or [u / 2 for u in upper]),
        lower=tuple(0.0 for _ in upper),
        upper=tuple(upper),
        settings=settings,
    )


def daily_series(values: np.ndarray, start: str = "2025-01-06") -> pd.Series:
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="D"))


# Capacity KPIs -------------------------------------------------------------------------------------------------


def test_utilisation_is_time_weighted_sum_of_used_over_provisioned():
    assert utilisation([2, 4, 6], [10, 10, 10]) == pytest.approx(0.4)
    # The last sample lasted twice as long: (2 + 4 + 2 * 6) / (10 + 10 + 2 * 10) = 18 / 40.
    assert utilisation([2, 4, 6], [10, 10, 10], durations=[1, 1, 2]) == pytest.approx(0.45)
    # Provisioned capacity changing over time: (5 + 5) / (10 + 40).
    assert utilisation([5, 5], [10, 40]) == pytest.approx(0.2)


def test_utilisation_is_undefined_without_provisioned_capacity():
    assert utilisation([0, 0], [0, 0]) is None
    with pytest.raises(ValueError):
        utilisation([1, 2], [3])


def test_waste_cost_counts_all_idle_capacity_by_default():
    assert waste_cost(Decimal("1000"), 0.4) == Decimal("600")


def test_waste_cost_allows_headroom_below_target_utilisation():
    # 1000 * (1 - 0.4 / 0.8) = 500
    assert waste_cost(Decimal("1000"), 0.4, target_utilisation=0.8) == Decimal("500")
    # At or above target nothing is waste.
    assert waste_cost(Decimal("1000"), 0.9, target_utilisation=0.8) == Decimal("0")


def test_waste_cost_keeps_every_digit_of_the_cost():
    cost = Decimal("12345678901234567890.123456789012345678")
    assert waste_cost(cost, 0.0) == cost
    assert waste_cost(cost, 0.5) == Decimal("6172839450617283945.061728394506172839")


def test_days_to_exhaustion_is_the_first_day_the_upper_bound_reaches_capacity():
    fc = make_forecast([5, 7, 9, 11])
    assert days_to_exhaustion(fc, 9) == 3
    assert days_to_exhaustion(fc, 8.5) == 3
    assert days_to_exhaustion(fc, 4) == 1


def test_days_to_exhaustion_is_none_when_capacity_is_never_reached():
    assert days_to_exhaustion(make_forecast([5, 7, 9, 11]), 100) is None


def test_days_to_exhaustion_counts_days_for_hourly_forecasts_and_varying_capacity():
    upper = [10.0] * 48
    upper[29] = 50.0  # hour 30 after the end of the history falls in day 2
    fc = make_forecast(upper, step=timedelta(hours=1))
    assert days_to_exhaustion(fc, 40) == 2
    capacity = [40.0] * 48
    capacity[29] = 60.0
    assert days_to_exhaustion(fc, capacity) is None


def test_right_sizing_prices_capacity_above_peak_over_target_utilisation():
    fc = make_forecast([40, 60, 50, 20])  # 4 daily steps: 96 hours
    result = right_sizing(fc, provisioned=100, target_utilisation=0.8, unit_price=Decimal("0.5"))
    assert result.peak_demand == 60
    assert result.recommended_capacity == pytest.approx(75)
    assert result.excess_capacity == pytest.approx(25)
    assert result.saving == Decimal("1200")  # 25 units x 0.5 per unit-hour x 96 hours


def test_right_sizing_can_use_the_period_cost_share_and_the_point_forecast():
    fc = make_forecast([40, 60, 50, 20])  # point is half the upper bound: peak 30
    by_cost = right_sizing(fc, provisioned=100, period_cost=Decimal("3000"), target_utilisation=0.8)
    assert by_cost.saving == Decimal("750")  # 3000 x 25 / 100
    by_point = right_sizing(fc, provisioned=100, unit_price=Decimal("1"), hours=10, basis="point")
    assert by_point.recommended_capacity == pytest.approx(30)
    assert by_point.saving == Decimal("700")


def test_right_sizing_saving_is_never_negative():
    result = right_sizing(make_forecast([40, 60]), provisioned=50, unit_price=Decimal("2"))
    assert result.excess_capacity == 0
    assert result.saving == Decimal("0")
    with pytest.raises(ValueError):
        right_sizing(make_forecast([1]), provisioned=5)


# Baseline and metrics -------------------------------------------------------------------------------------------


def test_seasonal_naive_repeats_the_last_season():
    assert seasonal_naive([1, 2, 3, 4, 5, 6], season=3, horizon=5) == [4, 5, 6, 4, 5]
    with pytest.raises(InsufficientHistory):
        seasonal_naive([1, 2], season=3, horizon=1)


def test_mase_scales_by_in_sample_seasonal_naive_error():
    history = [2, 4, 3, 7, 5, 6]
    # Season 2: |3-2| + |7-4| + |5-3| + |6-7| = 7 over 4 differences.
    assert insample_naive_mae(history, season=2) == pytest.approx(1.75)
    # MAE of the forecast: (|6-5| + |8-6|) / 2 = 1.5.
    assert mase([6, 8], [5, 6], history=history, season=2) == pytest.approx(1.5 / 1.75)


# Forecasting ----------------------------------------------------------------------------------------------------


def test_forecast_returns_the_future_with_bounds_and_recordable_settings():
    rng = np.random.default_rng(1)
    t = np.arange(84)
    history = daily_series(50 + 10 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 1, t.size))
    fc = forecast(history, horizon=14)

    assert fc.timestamps[0] == datetime(2025, 3, 31) and len(fc.timestamps) == 14
    assert all(lo <= p <= hi for lo, p, hi in zip(fc.lower, fc.point, fc.upper, strict=True))
    assert fc.settings.history_end == datetime(2025, 3, 30)
    assert fc.settings.season == 7 and fc.settings.horizon == 14 and fc.settings.level == 0.8
    assert fc.settings.method in fc.settings.validation_mase
    json.dumps(fc.settings.as_dict())


def test_forecast_clamps_demand_at_zero():
    t = np.arange(60)
    history = daily_series(np.where(t % 7 < 5, 0.0, 20.0) + np.where(t % 7 == 5, 5.0, 0.0))
    fc = forecast(history, horizon=7)
    assert min(fc.lower) >= 0 and min(fc.point) >= 0


def test_forecast_fills_gaps_and_rejects_too_short_histories():
    t = np.arange(60)
    history = daily_series(100 + 10 * np.sin(2 * np.pi * t / 7)).drop(pd.Timestamp("2025-02-10"))
    assert forecast(history, horizon=7).settings.filled == 1
    with pytest.raises(InsufficientHistory):
        forecast(history.iloc[:20], horizon=7)


def test_forecast_puts_jittered_scrapes_on_the_clock_grid():
    rng = np.random.default_rng(5)
    hours = pd.date_range("2025-01-06", periods=24 * 8, freq="h")
    stamps = hours + pd.to_timedelta(rng.integers(-90, 90, hours.size), unit="s")
    fc = forecast(pd.Series(rng.uniform(10, 20, hours.size), index=stamps))
    assert fc.settings.step_seconds == 3600 and fc.settings.filled == 0
    assert fc.timestamps[0] == datetime(2025, 1, 14)


def test_forecast_many_pools_series_of_the_same_grain():
    rng = np.random.default_rng(2)
    hours = pd.date_range("2025-01-06", periods=24 * 21, freq="h", tz="Europe/Amsterdam")
    daily = {f"pool-{i}": daily_series(rng.uniform(10, 20, 70)) for i in range(3)}
    hourly = pd.Series(rng.uniform(10, 20, hours.size), index=hours)
    result = forecast_many({**daily, "cluster": hourly}, horizon=None)

    assert list(result) == [*daily, "cluster"]
    assert result["pool-0"].settings.pooled_series == 3 and result["pool-0"].settings.horizon == 7
    assert result["cluster"].settings.season == 24 and result["cluster"].timestamps[0].tzinfo is not None


def test_interval_coverage_is_near_nominal_on_seasonal_series_with_known_noise():
    rng = np.random.default_rng(3)
    t = np.arange(120)
    histories, futures = {}, {}
    for i in range(150):
        level, amplitude = rng.uniform(50, 150), rng.uniform(5, 30)
        values = level + amplitude * np.sin(2 * np.pi * (t + i) / 7) + rng.normal(0, level * 0.05, t.size)
        histories[i], futures[i] = daily_series(values[:106]), values[106:]
    result = forecast_many(histories, horizon=14)
    inside = [
        lo <= actual <= hi
        for i, fc in result.items()
        for lo, actual, hi in zip(fc.lower, futures[i], fc.upper, strict=True)
    ]
    assert 0.72 <= np.mean(inside) <= 0.88


def test_model_beats_seasonal_naive_on_trend_and_seasonality():
    rng = np.random.default_rng(4)
    t = np.arange(200)
    series = daily_series(100 + 0.8 * t + 20 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 2, t.size))
    result = backtest(series, horizon=7, origins=6)
    assert result.ratio < 0.8
    assert {row.method for row in result.origins} & {"gbm", "gbm+naive"}
