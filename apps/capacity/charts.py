"""Plotly figure dicts for the capacity pages (drawn by static/js/portal.js)."""

from datetime import datetime

from .models import Forecast
from .selectors import PoolCapacity

LAYOUT = {"margin": {"l": 60, "r": 20, "t": 40, "b": 40}, "height": 340, "legend": {"orientation": "h", "y": -0.18}}
BAND = "rgba(31, 78, 121, 0.15)"


def _layout(title: str, **extra) -> dict:
    return {**LAYOUT, "title": {"text": title, "font": {"size": 14}}, **extra}


def waste_by_pool(capacities: list[PoolCapacity], currency: str) -> dict:
    rows = sorted((c for c in capacities if c.waste_cost is not None), key=lambda c: c.waste_cost)
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "x": [float(c.waste_cost) for c in rows],
                "y": [c.pool.name for c in rows],
                "text": [f"{float(c.waste_cost):,.0f}" for c in rows],
                "textposition": "auto",
                "marker": {"color": "#c53030"},
                "hovertemplate": "%{y}: %{x:,.2f} " + currency + "<extra></extra>",
            }
        ],
        "layout": _layout(
            "Waste cost by pool", xaxis={"title": {"text": currency}}, yaxis={"automargin": True}, showlegend=False
        ),
    }


def utilisation_heatmap(heat: dict) -> dict:
    names = [name for name, _ in heat["rows"]]
    z = [[round(v, 4) if v is not None else None for v in values] for _, values in heat["rows"]]
    return {
        "data": [
            {
                "type": "heatmap",
                "x": [d.isoformat() for d in heat["days"]],
                "y": names,
                "z": z,
                "zmin": 0,
                "zmax": 1,
                "colorscale": [[0, "#c53030"], [0.5, "#f6e05e"], [1, "#2f855a"]],
                "colorbar": {"tickformat": ".0%", "title": {"text": "used"}},
                "hovertemplate": "%{y}<br>%{x}: %{z:.1%} used<extra></extra>",
                "xgap": 1,
                "ygap": 1,
            }
        ],
        "layout": _layout(
            "Utilisation by pool and day", yaxis={"automargin": True}, height=max(260, 60 + 34 * len(names))
        ),
    }


def pool_forecast(history: list[dict], forecast: Forecast | None, unit: str) -> dict:
    """Provisioned vs used with the forecast band, and the exhaustion point where the upper bound meets capacity."""
    x = [row["at"] for row in history]
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": "Provisioned",
            "x": x,
            "y": [row["provisioned"] for row in history],
            "line": {"shape": "hv", "color": "#1b2430", "width": 2},
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": "Used (peak)" if forecast is None or forecast.grain == "day" else "Used",
            "x": x,
            "y": [row["peak_used"] for row in history],
            "line": {"color": "#2f855a"},
        },
    ]
    shapes, annotations = [], []
    if forecast is not None and forecast.points:
        fx = [datetime.fromisoformat(p[0]) for p in forecast.points]
        data += [
            {
                "type": "scatter",
                "mode": "lines",
                "name": "Upper bound",
                "x": fx,
                "y": [p[3] for p in forecast.points],
                "line": {"width": 0},
                "showlegend": False,
                "hoverinfo": "skip",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{round(forecast.level * 100)} % interval",
                "x": fx,
                "y": [p[2] for p in forecast.points],
                "fill": "tonexty",
                "fillcolor": BAND,
                "line": {"width": 0},
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "Forecast",
                "x": fx,
                "y": [p[1] for p in forecast.points],
                "line": {"dash": "dash", "color": "#1f4e79"},
            },
        ]
        if forecast.provisioned is not None:
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": "Provisioned now",
                    "x": [fx[0], fx[-1]],
                    "y": [forecast.provisioned, forecast.provisioned],
                    "line": {"color": "#1b2430", "dash": "dot", "width": 1},
                    "showlegend": False,
                }
            )
        if forecast.exhaustion_days is not None:
            when = next((t for t, p in zip(fx, forecast.points, strict=True) if p[3] >= forecast.provisioned), fx[-1])
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"Exhaustion in {forecast.exhaustion_days} d",
                    "x": [when],
                    "y": [forecast.provisioned],
                    "marker": {"symbol": "x", "size": 14, "color": "#c53030"},
                }
            )
            annotations.append(
                {"x": when, "y": forecast.provisioned, "text": "exhaustion", "showarrow": True, "ay": -30}
            )
    return {
        "data": data,
        "layout": _layout(
            "Provisioned vs used, with the forecast",
            yaxis={"title": {"text": unit}, "rangemode": "tozero"},
            shapes=shapes,
            annotations=annotations,
            hovermode="x unified",
        ),
    }


def waste_over_time(days: list[PoolCapacity], currency: str) -> dict:
    x = [d.start.date().isoformat() for d in days]
    return {
        "data": [
            {
                "type": "bar",
                "name": "Waste cost",
                "x": x,
                "y": [float(d.waste_cost) if d.waste_cost is not None else None for d in days],
                "marker": {"color": "#c53030"},
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "Utilisation",
                "x": x,
                "y": [d.utilisation for d in days],
                "yaxis": "y2",
                "line": {"color": "#2f855a"},
            },
        ],
        "layout": _layout(
            "Waste over time",
            yaxis={"title": {"text": currency}, "rangemode": "tozero"},
            yaxis2={"overlaying": "y", "side": "right", "tickformat": ".0%", "range": [0, 1.05], "showgrid": False},
            hovermode="x unified",
        ),
    }
