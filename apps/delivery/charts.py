"""Plotly figure dicts for the Functionality page (drawn by static/js/portal.js)."""

from collections.abc import Sequence
from decimal import Decimal

from apps.core.periods import Period

from .models import DoraMetric
from .selectors import Benchmark, CostSeries, DoraPoint

BLUE, GREEN, AMBER, GREY = "#1f4e79", "#2f855a", "#b7791f", "#94a3b8"
TEAM_COLOURS = ["#1f4e79", "#2f855a", "#b7791f", "#7c3aed", "#c53030", "#0e7490", "#be185d", "#4d7c0f"]


def _x(periods: Sequence[Period]) -> list[str]:
    return [f"{p.start:%b %Y}" if p.kind == "month" else p.key for p in periods]


def _f(value: Decimal | None, places: int = 2) -> float | None:
    return None if value is None else round(float(value), places)


def _layout(y_title: str, **extra) -> dict:
    layout = {
        "height": 300,
        "margin": {"l": 60, "r": 20, "t": 10, "b": 40},
        "legend": {"orientation": "h", "y": -0.18},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero", "gridcolor": "#e2e8f0"},
        "xaxis": {"type": "category", "automargin": True, "tickangle": -45},  # month labels neither clip nor overlap
        "plot_bgcolor": "#fff",
        "paper_bgcolor": "#fff",
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "hovermode": "x unified",
    }
    layout.update(extra)
    return layout


def cost_per_feature_by_team(series: CostSeries, currency: str) -> dict:
    x = _x([p.period for p in series.points])
    data = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": team,
            "x": x,
            "y": [_f(p.cost_per_feature) for p in points],
            "line": {"color": TEAM_COLOURS[i % len(TEAM_COLOURS)], "width": 2},
            "connectgaps": False,
        }
        for i, (team, points) in enumerate(series.teams.items())
    ]
    data.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": "All selected",
            "x": x,
            "y": [_f(p.cost_per_feature) for p in series.points],
            "line": {"color": GREY, "width": 3, "dash": "dot"},
        }
    )
    return {"data": data, "layout": _layout(f"{currency} per feature")}


def cost_drivers(series: CostSeries, currency: str) -> dict:
    """Cost per feature split into its two drivers, stacked, with the number of features shipped."""
    x = _x([p.period for p in series.points])
    return {
        "data": [
            {
                "type": "bar",
                "name": "Labour per feature",
                "x": x,
                "y": [_f(p.labour_per_feature) for p in series.points],
                "marker": {"color": BLUE},
            },
            {
                "type": "bar",
                "name": "Non-production environments per feature",
                "x": x,
                "y": [_f(p.environments_per_feature) for p in series.points],
                "marker": {"color": AMBER},
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "Features shipped",
                "x": x,
                "y": [p.features for p in series.points],
                "yaxis": "y2",
                "line": {"color": GREEN},
            },
        ],
        "layout": _layout(
            f"{currency} per feature",
            barmode="stack",
            yaxis2={
                "title": {"text": "features"},
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
                "tickformat": ",d",  # a count of features: whole numbers
                "automargin": True,
            },
        ),
    }


DORA_CHARTS = {
    DoraMetric.DEPLOYMENT_FREQUENCY: ("bar", "deployments per week", BLUE),
    DoraMetric.LEAD_TIME: ("line", "median hours", BLUE),
    DoraMetric.CHANGE_FAILURE_RATE: ("bar", "% of deployments", AMBER),
    DoraMetric.TIME_TO_RESTORE: ("line", "median hours", AMBER),
}


def dora_trend(points: Sequence[DoraPoint], metric: str, benchmark: Benchmark | None) -> dict:
    kind, y_title, colour = DORA_CHARTS[metric]
    x = _x([p.period for p in points])
    if metric == DoraMetric.DEPLOYMENT_FREQUENCY:
        values = [_f(p.deployments_per_week) for p in points]
    else:
        values = [_f(p.value(metric)) for p in points]
    trace = {"name": DoraMetric(metric).label, "x": x, "y": values, "marker": {"color": colour}}
    trace.update({"type": "bar"} if kind == "bar" else {"type": "scatter", "mode": "lines+markers"})
    data = [trace]
    if benchmark is not None:
        elite = (benchmark.thresholds.get(metric) or [None])[0]
        if elite is not None and elite.bound is not None:
            bound = elite.bound * 7 if metric == DoraMetric.DEPLOYMENT_FREQUENCY else elite.bound
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"Elite ({benchmark.source_year})",
                    "x": x,
                    "y": [_f(bound)] * len(x),
                    "line": {"color": GREEN, "dash": "dash", "width": 1},
                    "hoverinfo": "skip",
                }
            )
    layout = _layout(y_title, height=240, showlegend=False)
    return {"data": data, "layout": layout}
