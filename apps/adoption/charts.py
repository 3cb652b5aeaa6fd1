"""Plotly figures of the adoption pages, as plain dicts for ``json_script`` (drawn by static/js/portal.js)."""

import json
from collections.abc import Sequence
from decimal import Decimal

from apps.core.periods import Period

from .nps import NpsScore

GREEN, AMBER, RED, GREY, BRAND = "#2f855a", "#b7791f", "#c53030", "#94a3b8", "#1f4e79"
LAYOUT = {
    "margin": {"l": 48, "r": 48, "t": 12, "b": 40},
    "height": 320,
    "legend": {"orientation": "h", "y": -0.18},
    "font": {"family": "system-ui, sans-serif", "size": 12},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
}


def _num(value: Decimal | int | None) -> float | None:
    return None if value is None else float(value)


def _figure(data: list, layout: dict) -> dict:
    import plotly.graph_objects as go

    fig = go.Figure(data=data, layout={**LAYOUT, **layout})
    return json.loads(fig.to_json())


def funnel_figure(steps) -> dict:
    import plotly.graph_objects as go

    text = [
        f"{s.users:,}" + ("" if s.step_conversion is None else f" · {s.step_conversion}% of previous") for s in steps
    ]
    trace = go.Funnel(
        y=[s.label for s in steps],
        x=[s.users for s in steps],
        text=text,
        textinfo="text",
        hovertemplate="%{y}: %{x:,} people<extra></extra>",
        marker={"color": [BRAND, "#2b6cb0", "#3182ce", GREEN]},
    )
    return _figure([trace], {"margin": {"l": 160, "r": 24, "t": 12, "b": 24}})


def daily_trend_figure(points) -> dict:
    import plotly.graph_objects as go

    days = [p.day.isoformat() for p in points]
    return _figure(
        [
            go.Bar(x=days, y=[p.dau for p in points], name="DAU", marker={"color": "#90cdf4"}),
            go.Scatter(x=days, y=[p.mau_30 for p in points], name="MAU, rolling 30 days", line={"color": BRAND}),
            go.Scatter(
                x=days,
                y=[_num(p.stickiness) for p in points],
                name="Stickiness (DAU / rolling MAU, %)",
                yaxis="y2",
                line={"color": AMBER, "dash": "dot"},
            ),
        ],
        {
            "yaxis": {"title": "users", "rangemode": "tozero"},
            "yaxis2": {
                "title": "%",
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
                "showgrid": False,
                "tickformat": ".0f",
            },
        },
    )


def monthly_trend_figure(periods: Sequence[Period], mau: Sequence, stickiness: Sequence) -> dict:
    import plotly.graph_objects as go

    labels = [p.label for p in periods]
    return _figure(
        [
            go.Bar(x=labels, y=[_num(v) for v in mau], name="MAU (calendar month)", marker={"color": BRAND}),
            go.Scatter(
                x=labels,
                y=[_num(v) for v in stickiness],
                name="Stickiness (avg DAU / MAU, %)",
                yaxis="y2",
                line={"color": AMBER},
            ),
        ],
        {
            "yaxis": {"title": "users", "rangemode": "tozero"},
            "yaxis2": {
                "title": "%",
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
                "showgrid": False,
                "tickformat": ".0f",
            },
        },
    )


def nps_trend_figure(trend: Sequence[tuple[Period, NpsScore]]) -> dict:
    import plotly.graph_objects as go

    points = [(p, s) for p, s in trend if s.n]
    labels = [p.label for p, _ in points]
    scores = [_num(s.score) for _, s in points]
    upper = [_num(s.interval[1] - s.score) for _, s in points]
    lower = [_num(s.score - s.interval[0]) for _, s in points]
    return _figure(
        [
            go.Scatter(
                x=labels,
                y=scores,
                mode="lines+markers+text",
                text=[f"n = {s.n}" for _, s in points],
                textposition="top center",
                name="NPS (95 % CI)",
                error_y={"type": "data", "symmetric": False, "array": upper, "arrayminus": lower, "color": GREY},
                line={"color": BRAND},
            )
        ],
        {"yaxis": {"title": "NPS", "range": [-100, 100], "zeroline": True}, "showlegend": False},
    )


def nps_distribution_figure(counts: Sequence[int]) -> dict:
    import plotly.graph_objects as go

    colours = [RED] * 7 + [GREY] * 2 + [GREEN] * 2
    return _figure(
        [
            go.Bar(
                x=list(range(11)),
                y=list(counts),
                marker={"color": colours},
                hovertemplate="score %{x}: %{y} responses<extra></extra>",
            )
        ],
        {"xaxis": {"title": "score (0-6 detractors, 7-8 passives, 9-10 promoters)", "dtick": 1}, "showlegend": False},
    )
