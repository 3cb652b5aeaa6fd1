"""Plotly figure dicts for the alert pages (drawn by static/js/portal.js): the rule preview with its threshold
line and firing spans, and the model health charts with the thresholds of the rules watching them."""

from apps.telemetry.selectors import WorkloadSeries

from .evaluation import LATENCY_LEVEL, value_label
from .models import AlertRule
from .preview import Preview

M = AlertRule.Metric
RED, AMBER, GREEN, GREY = "#c53030", "#b7791f", "#2f855a", "#64748b"
PALETTE = ["#1f4e79", "#2f855a", "#7c3aed", "#0e7490", "#be185d", "#4d7c0f", "#9a3412", "#475569"]
LAYOUT = {
    "height": 340,
    "margin": {"l": 64, "r": 16, "t": 36, "b": 40},
    "hovermode": "x unified",
    "legend": {"orientation": "h", "y": -0.22},
    "plot_bgcolor": "#fff",
    "paper_bgcolor": "#fff",
    "font": {"family": "system-ui, sans-serif", "size": 12},
}


def _yaxis(metric: str) -> dict:
    if metric in LATENCY_LEVEL:
        return {"title": {"text": "ms"}, "rangemode": "tozero"}
    if metric in (M.ERROR_RATE, M.ACCURACY, M.UTILISATION):
        return {"tickformat": ".1%", "rangemode": "tozero"}
    if metric == M.THROUGHPUT:
        return {"title": {"text": "requests / s"}, "rangemode": "tozero"}
    return {"rangemode": "tozero"}


def _threshold_trace(x0, x1, y: float, name: str, color: str, dash: str) -> dict:
    """A legend entry (and hover value) for a threshold drawn as a shape."""
    return {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "x": [x0, x1],
        "y": [y, y],
        "line": {"color": color, "dash": dash, "width": 2},
        "hoverinfo": "name+y",
    }


def preview_figure(preview: Preview) -> dict:
    rule = preview.rule
    traces, shapes = [], []
    for n, history in enumerate(preview.chart_instances):
        traces.append(
            {
                "type": "scatter",
                "mode": "lines" if preview.step == "hour" else "lines+markers",
                "name": history.label,
                "x": [t for t, _ in history.points],
                "y": [None if v is None else round(v, 6) for _, v in history.points],
                "line": {"color": PALETTE[n % len(PALETTE)]},
                "connectgaps": False,
            }
        )
        for episode in history.episodes:
            if episode.fired_at is None:
                continue
            shapes.append(
                {
                    "type": "rect",
                    "xref": "x",
                    "yref": "paper",
                    "x0": episode.fired_at,
                    "x1": episode.resolved_at or preview.end,
                    "y0": 0,
                    "y1": 1,
                    "fillcolor": RED,
                    "opacity": 0.12,
                    "line": {"width": 0},
                }
            )
    if rule.threshold is not None:
        threshold = float(rule.threshold)
        name = f"threshold {value_label(rule.metric, threshold)}"
        traces.append(_threshold_trace(preview.start, preview.end, threshold, name, RED, "dash"))
    if rule.recovery_threshold is not None:
        recovery = float(rule.recovery_threshold)
        name = f"recovery {value_label(rule.metric, recovery)}"
        traces.append(_threshold_trace(preview.start, preview.end, recovery, name, GREEN, "dot"))
    layout = {
        **LAYOUT,
        "title": {"text": f"Last {preview.days} days · shaded: would have fired", "font": {"size": 14}},
        "yaxis": _yaxis(rule.metric),
        "shapes": shapes,
    }
    return {"data": traces, "layout": layout}


def _workload_traces(workloads: list[tuple[str, WorkloadSeries]], value, dash: str = "solid") -> list[dict]:
    traces = []
    for n, (name, w) in enumerate(workloads):
        points = [(b.start, value(b, w)) for b in w.ordered]
        points = [(t, v) for t, v in points if v is not None]
        if points:
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": name,
                    "x": [t for t, _ in points],
                    "y": [round(v, 6) for _, v in points],
                    "line": {"color": PALETTE[n % len(PALETTE)], "dash": dash},
                }
            )
    return traces


def _with_thresholds(title: str, traces: list[dict], metric: str, lines: list[tuple[str, float]]) -> dict:
    yaxis = _yaxis(metric)
    xs = [x for t in traces for x in t["x"]]
    if xs and lines:
        for name, y in lines:
            traces.append(_threshold_trace(min(xs), max(xs), y, f"{name} ({value_label(metric, y)})", RED, "dash"))
    return {"data": traces, "layout": {**LAYOUT, "title": {"text": title, "font": {"size": 14}}, "yaxis": yaxis}}


def latency_figure(workloads: list[tuple[str, WorkloadSeries]], thresholds: dict, level: str = "p95") -> dict:
    metric = {"p50": M.LATENCY_P50, "p95": M.LATENCY_P95, "p99": M.LATENCY_P99}[level]
    traces = _workload_traces(workloads, lambda b, w: getattr(b, level))
    return _with_thresholds(f"Latency {level}", traces, metric, thresholds.get(metric, []))


def error_rate_figure(workloads: list[tuple[str, WorkloadSeries]], thresholds: dict) -> dict:
    traces = _workload_traces(workloads, lambda b, w: b.errors / b.requests if b.requests else None)
    return _with_thresholds("Error rate", traces, M.ERROR_RATE, thresholds.get(M.ERROR_RATE, []))


def comparison_figure(workloads: list[tuple[str, WorkloadSeries]], level: str = "p95") -> dict:
    traces = _workload_traces(workloads, lambda b, w: getattr(b, level))
    traces += [
        {**t, "yaxis": "y2", "line": {**t["line"], "dash": "dot"}, "name": f"{t['name']} error rate"}
        for t in _workload_traces(workloads, lambda b, w: b.errors / b.requests if b.requests else None)
    ]
    layout = {
        **LAYOUT,
        "margin": {**LAYOUT["margin"], "r": 64},
        "title": {"text": f"Latency {level} (solid) and error rate (dotted)", "font": {"size": 14}},
        "yaxis": {"title": {"text": "ms"}, "rangemode": "tozero"},
        "yaxis2": {"overlaying": "y", "side": "right", "tickformat": ".1%", "rangemode": "tozero", "showgrid": False},
    }
    return {"data": traces, "layout": layout}
