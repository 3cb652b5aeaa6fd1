"""Time the batch forecast of many daily series, with days to exhaustion and right-sizing for each.

Usage: python bench/forecast_scale.py [--series 2000] [--days 90] [--horizon 30] [--chunk N] [--seed 7]

Series are generated (seeded): a level, a weekly pattern, a trend, noise and the odd outage or spike, like daily
peak demand of capacity pools. ``--chunk`` forecasts the batch in chunks of that many series, as Celery workers
would. The last line is the elapsed seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.capacity.forecasting import days_to_exhaustion, forecast_many, right_sizing


def generate(count: int, days: int, seed: int) -> tuple[dict[str, pd.Series], dict[str, float]]:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-01-01", periods=days, freq="D")
    t = np.arange(days)
    series, provisioned = {}, {}
    for i in range(count):
        level = rng.lognormal(3, 1)
        weekly = 1 + rng.uniform(0, 0.4) * np.sin(2 * np.pi * (t + rng.integers(7)) / 7)
        trend = 1 + rng.normal(0, 0.004) * t
        values = level * weekly * trend * (1 + rng.normal(0, rng.uniform(0.02, 0.15), days))
        if rng.random() < 0.1:  # an outage or a spike somewhere in the history
            values[rng.integers(days)] *= rng.choice([0.1, 3.0])
        key = f"pool-{i:04d}"
        series[key] = pd.Series(np.clip(values, 0, None), index=index)
        provisioned[key] = float(values.max() * rng.uniform(0.9, 2.5))
    return series, provisioned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--horizon", type=int, default=30)
    parser.add_argument("--chunk", type=int, default=0, help="forecast in chunks of this many series (0: one batch)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    series, provisioned = generate(args.series, args.days, args.seed)
    keys = list(series)
    size = args.chunk or len(keys)
    started = time.perf_counter()
    forecasts = {}
    for first in range(0, len(keys), size):
        chunk = {key: series[key] for key in keys[first : first + size]}
        forecasts.update(forecast_many(chunk, horizon=args.horizon))
    exhaustion = {key: days_to_exhaustion(fc, provisioned[key]) for key, fc in forecasts.items()}
    savings = {
        key: right_sizing(fc, provisioned=provisioned[key], target_utilisation=0.8, unit_price=Decimal("0.0125"))
        for key, fc in forecasts.items()
    }
    elapsed = time.perf_counter() - started

    methods = Counter(fc.settings.method for fc in forecasts.values())
    mase = np.array([fc.settings.validation_mase[fc.settings.method] for fc in forecasts.values()])
    print(f"{len(forecasts)} series x {args.days} days, horizon {args.horizon} days, chunks of {size}")
    print(f"methods chosen: {dict(methods)}")
    print(f"validation MASE of the chosen method: median {np.median(mase):.3f}, p90 {np.quantile(mase, 0.9):.3f}")
    print(f"pools exhausted within the horizon: {sum(d is not None for d in exhaustion.values())}")
    print(f"total right-sizing saving: {sum(r.saving for r in savings.values()):.2f}")
    print(f"{elapsed:.2f}")


if __name__ == "__main__":
    main()
