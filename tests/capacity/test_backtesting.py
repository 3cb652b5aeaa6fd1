"""The pooled backtest scores the pooled forecast the way forecasting.backtest scores a single series."""

import numpy as np
import pandas as pd
import pytest

from apps.capacity.backtesting import pooled_backtest
from apps.capacity.forecasting import backtest


def _daily(seed: int, days: int = 120) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-06-01", periods=days, freq="D", tz="UTC")
    weekly = np.where(index.day_of_week >= 5, 14.0, 9.0)
    return pd.Series(weekly + 0.03 * np.arange(days) + rng.normal(0, 0.6, days), index=index)


def test_a_chunk_of_one_series_gets_the_library_backtest_result():
    series = _daily(1)
    ours = pooled_backtest({"a": series}, horizon=14, origins=3)["a"]
    theirs = backtest(series, horizon=14, origins=3)
    assert [o.origin for o in ours.origins] == [o.origin for o in theirs.origins]
    for field in ("mase_model", "mase_naive", "ratio", "coverage", "mean_width", "interval_score"):
        assert getattr(ours, field) == pytest.approx(getattr(theirs, field)), field


def test_series_are_backtested_at_as_many_origins_as_their_history_allows():
    results = pooled_backtest(
        {"long": _daily(2, 120), "short": _daily(3, 60), "tiny": _daily(4, 30)}, horizon=14, origins=3
    )
    # min history 14 + 3 x 7 = 35: 120 days allow (120 - 35) // 14 = 6 origins (3 used); 60 allow 1; 30 none.
    assert len(results["long"].origins) == 3 and len(results["short"].origins) == 1
    assert results["tiny"] is None
    assert results["short"].origins[0].origin == _daily(3, 60).index[60 - 14].to_pydatetime()
