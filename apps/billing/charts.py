"""Plotly figure dicts for the billing pages (drawn by static/js/portal.js)."""

from decimal import Decimal

from apps.catalog.models import Service
from apps.core.periods import Period

from .reports import Explorer, Figures, UnitCostReport

BLUE, GREEN, AMBER, RED, GREY = "#1f4e79", "#2f855a", "#b7791f", "#c53030", "#94a3b8"
PALETTE = [
    "#1f4e79",
    "#2f855a",
    "#b7791f",
    "#7c3aed",
    "#c53030",
    "#0e7490",
    "#be185d",
    "#4d7c0f",
    "#9a3412",
    "#475569",
    "#0f766e",
    "#a16207",
    "#94a3b8",
]


def _f(value: Decimal | None, places: int = 6) -> float | None:
    return None if value is None else round(float(value), places)


def _layout(**extra) -> dict:
    layout = {
        "height": 320,
        "margin": {"l": 70, "r": 30, "t": 10, "b": 40},
        "legend": {"orientation": "h", "y": -0.2},
        "plot_bgcolor": "#fff",
        "paper_bgcolor": "#fff",
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "hovermode": "x unified",
    }
    layout.update(extra)
    return layout


def unit_cost_trend(months: list[Period], points: list[Figures], service: Service, currency: str) -> dict:
    """Cost (bars), units and unit cost (lines) of one service over the trailing months: what explains a change."""
    x = [f"{m.start:%b %Y}" for m in months]
    unit = f"{currency} per {service.unit_name}".strip()
    return {
        "data": [
            {
                "type": "bar",
                "name": f"Allocated cost ({currency})".replace(" ()", ""),
                "x": x,
                "y": [_f(p.cost, 2) for p in points],
                "marker": {"color": "#bfd3e6"},
                "yaxis": "y",
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"Units ({service.unit_name})",
                "x": x,
                "y": [_f(p.units, 2) for p in points],
                "line": {"color": GREEN, "width": 2, "dash": "dot"},
                "yaxis": "y2",
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"Unit cost ({unit})",
                "x": x,
                "y": [_f(p.unit_cost) for p in points],
                "line": {"color": BLUE, "width": 3},
                "yaxis": "y3",
                "connectgaps": False,
            },
        ],
        "layout": _layout(
            xaxis={"type": "category", "domain": [0, 0.86]},
            height=360,
            yaxis={"title": {"text": currency or "cost"}, "rangemode": "tozero", "gridcolor": "#e2e8f0"},
            yaxis2={
                "title": {"text": service.unit_name},
                "overlaying": "y",
                "side": "right",
                "anchor": "x",
                "rangemode": "tozero",
                "showgrid": False,
            },
            yaxis3={
                "title": {"text": unit},
                "overlaying": "y",
                "side": "right",
                "anchor": "free",
                "position": 0.94,
                "rangemode": "tozero",
                "showgrid": False,
            },
            margin={"l": 70, "r": 60, "t": 10, "b": 40},
        ),
    }


def unit_cost_changes(report: UnitCostReport) -> dict:
    """Each service's unit-cost change against the previous period, green when it fell."""
    rows = [r for r in report.rows if r.change is not None]
    values = [_f(r.change * 100, 2) for r in rows]
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "x": values,
                "y": [r.service.name for r in rows],
                "marker": {"color": [GREEN if v is not None and v <= 0 else RED for v in values]},
                "name": "Unit cost change",
                "hovertemplate": "%{y}: %{x:.1f} %<extra></extra>",
            }
        ],
        "layout": _layout(
            height=max(160, 60 + 34 * len(rows)),
            xaxis={"title": {"text": f"% change vs {report.previous_period.label}"}, "zeroline": True},
            yaxis={"automargin": True},
            hovermode="closest",
            showlegend=False,
            margin={"l": 20, "r": 20, "t": 10, "b": 50},
        ),
    }


def explorer_bars(explorer: Explorer) -> dict:
    """Stacked bars: one series per group, one bar per day, week or month."""
    fmt = "%b %Y" if explorer.grain == "month" else "%-d %b"
    x = [b.strftime(fmt) for b in explorer.buckets]
    return {
        "data": [
            {
                "type": "bar",
                "name": s.label,
                "x": x,
                "y": [_f(v, 2) for v in s.values],
                "marker": {"color": PALETTE[i % len(PALETTE)]},
            }
            for i, s in enumerate(explorer.series)
        ],
        "layout": _layout(
            barmode="relative",  # credits (negative cost) stack below zero
            height=380,
            xaxis={"type": "category"},
            yaxis={"title": {"text": explorer.currency or "cost"}, "gridcolor": "#e2e8f0"},
        ),
    }
