"""Plotly figure dicts for the model telemetry page (drawn by static/js/portal.js)."""

from .selectors import LATENCY_LEVELS, WorkloadSeries

LAYOUT = {
    "margin": {"l": 56, "r": 16, "t": 36, "b": 40},
    "hovermode": "x unified",
    "legend": {"orientation": "h", "y": -0.2},
    "height": 320,
}
DASH = {"p50": "dot", "p95": "solid", "p99": "dash"}
# One colour per model version x environment, the same in every chart of the page (Plotly's default order).
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
# A half-width chart shows its own legend only for this many lines; beyond, the legend would squeeze the
# plot into a sliver: the colours are those of the latency chart's legend, and hovering names every line.
SMALL_LEGEND = 3


def _figure(title: str, traces: list[dict], yaxis: dict, *, small: bool = False) -> dict:
    layout = {**LAYOUT, "title": {"text": title, "font": {"size": 14}}, "yaxis": yaxis}
    if small and len(traces) > SMALL_LEGEND:
        layout["showlegend"] = False
    return {"data": traces, "layout": layout}


def _colour(index: int) -> str:
    """The colour of the index-th model version x environment of the page."""
    return COLOURS[index % len(COLOURS)]


def latency_figure(workloads: list[WorkloadSeries], *, levels: tuple[str, ...] = LATENCY_LEVELS) -> dict:
    traces = []
    for i, w in enumerate(workloads):
        buckets = [b for b in w.ordered if b.p50 is not None]
        if not buckets:
            continue
        for level in levels:
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{w.key.label} {level}" if len(levels) > 1 else w.key.label,
                    "legendgroup": w.key.label,
                    "x": [b.start for b in buckets],
                    "y": [round(getattr(b, level), 2) for b in buckets],
                    "line": {"dash": DASH[level], "color": _colour(i)},
                }
            )
    return _figure("Latency percentiles", traces, {"title": {"text": "ms"}, "rangemode": "tozero"})


def error_rate_figure(workloads: list[WorkloadSeries]) -> dict:
    traces = []
    for i, w in enumerate(workloads):
        buckets = [b for b in w.ordered if b.requests]
        if buckets:
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": w.key.label,
                    "x": [b.start for b in buckets],
                    "y": [b.errors / b.requests for b in buckets],
                    "line": {"color": _colour(i)},
                }
            )
    return _figure("Error rate", traces, {"tickformat": ".2%", "rangemode": "tozero"}, small=True)


def throughput_figure(workloads: list[WorkloadSeries]) -> dict:
    traces = []
    for i, w in enumerate(workloads):
        buckets = w.ordered
        if any(b.requests for b in buckets):
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": w.key.label,
                    "x": [b.start for b in buckets],
                    "y": [round(b.requests / w.seconds_per_bucket, 4) for b in buckets],
                    "line": {"color": _colour(i)},
                }
            )
    return _figure("Throughput", traces, {"title": {"text": "requests / s"}, "rangemode": "tozero"}, small=True)
