"""Plotly figure dicts for the model telemetry page (drawn by static/js/portal.js)."""

from .selectors import LATENCY_LEVELS, WorkloadSeries

LAYOUT = {
    "margin": {"l": 56, "r": 16, "t": 36, "b": 40},
    "hovermode": "x unified",
    "legend": {"orientation": "h", "y": -0.2},
    "height": 320,
}
DASH = {"p50": "dot", "p95": "solid", "p99": "dash"}


def _figure(title: str, traces: list[dict], yaxis: dict) -> dict:
    return {"data": traces, "layout": {**LAYOUT, "title": {"text": title, "font": {"size": 14}}, "yaxis": yaxis}}


def latency_figure(workloads: list[WorkloadSeries], *, levels: tuple[str, ...] = LATENCY_LEVELS) -> dict:
    traces = []
    for w in workloads:
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
                    "line": {"dash": DASH[level]},
                }
            )
    return _figure("Latency percentiles", traces, {"title": {"text": "ms"}, "rangemode": "tozero"})


def error_rate_figure(workloads: list[WorkloadSeries]) -> dict:
    traces = []
    for w in workloads:
        buckets = [b for b in w.ordered if b.requests]
        if buckets:
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": w.key.label,
                    "x": [b.start for b in buckets],
                    "y": [b.errors / b.requests for b in buckets],
                }
            )
    return _figure("Error rate", traces, {"tickformat": ".2%", "rangemode": "tozero"})


def throughput_figure(workloads: list[WorkloadSeries]) -> dict:
    traces = []
    for w in workloads:
        buckets = w.ordered
        if any(b.requests for b in buckets):
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": w.key.label,
                    "x": [b.start for b in buckets],
                    "y": [round(b.requests / w.seconds_per_bucket, 4) for b in buckets],
                }
            )
    return _figure("Throughput", traces, {"title": {"text": "requests / s"}, "rangemode": "tozero"})
