"""Rolling-origin accuracy of the portal's forecaster on one series.

Usage: python bench/forecast_accuracy.py bench/data/vic_electricity_demand_hourly.csv [--season N] [--horizon N]
       [--origins N] [--level L]

Reads a ``timestamp,value`` CSV and backtests ``apps.capacity.forecasting.forecast`` on the end of it. The last
line is ``MASE model=<x> seasonal_naive=<y> ratio=<x/y> coverage=<share of actuals inside the interval>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.capacity.forecasting import backtest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--season", type=int, default=None, help="steps per season (default: a day, or a week)")
    parser.add_argument("--horizon", type=int, default=None, help="steps ahead (default: one season)")
    parser.add_argument("--origins", type=int, default=None, help="rolling origins (default: 28)")
    parser.add_argument("--level", type=float, default=0.8, help="nominal interval coverage")
    args = parser.parse_args()

    frame = pd.read_csv(args.csv, parse_dates=["timestamp"])
    series = frame.set_index("timestamp")["value"].astype("float64")
    started = time.perf_counter()
    result = backtest(series, horizon=args.horizon, season=args.season, origins=args.origins, level=args.level)
    elapsed = time.perf_counter() - started

    print(f"series: {args.csv.name}, {len(series)} observations, {series.index[0]} .. {series.index[-1]}")
    print(f"season={result.season} horizon={result.horizon} origins={len(result.origins)} level={result.level}")
    for row in result.origins:
        print(
            f"  {row.origin:%Y-%m-%d %H:%M}  {row.method:<15} mase={row.mase_model:.3f} "
            f"naive={row.mase_naive:.3f} coverage={row.coverage:.2f}"
        )
    methods = Counter(row.method for row in result.origins)
    worst = max(row.mase_model / row.mase_naive for row in result.origins if row.mase_naive)
    print(f"methods chosen: {dict(methods)}")
    print(f"worst origin ratio: {worst:.3f}")
    print(
        f"mean interval width (scaled): {result.mean_width:.3f}, interval score (scaled): {result.interval_score:.3f}"
    )
    print(f"backtest took {elapsed:.1f} s")
    print(
        f"MASE model={result.mase_model:.3f} seasonal_naive={result.mase_naive:.3f} "
        f"ratio={result.ratio:.3f} coverage={result.coverage:.3f}"
    )


if __name__ == "__main__":
    main()
