"""The metrics opsportal stores, by name: what each one measures, its unit and how its samples aggregate.

A metric name is part of every series' identity (with the model, version, environment, service, pool and
location it describes). Prometheus mappings and the push API both name metrics from this list, so a figure
means the same thing whichever way it arrived.

Kinds:

- ``counter``: a count of events in the sample's interval (the increase of a Prometheus counter over the
  step, or a batch job's count). Rollup ``sum`` is the total over the bucket.
- ``gauge``: a level at the sample's time (GPUs in use, PSI). Rollup ``sum / count`` is the bucket's mean.
- ``latency``: one latency observation per sample, in milliseconds (a request's latency, or a short
  interval's mean). Rollups also keep p50, p95 and p99 of the bucket's samples.

Capacity metrics come in pairs per resource type, named after ``CapacityPool.ResourceType``:
``<type>_used`` and ``<type>_provisioned`` (cpu cores, GPUs, memory GiB, nodes).
"""

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    LATENCY = "latency"


class Subject(StrEnum):
    """What a point of the metric must name, besides the optional labels."""

    WORKLOAD = "workload"  # a model (and optionally its version) or a service
    POOL = "pool"  # a capacity pool
    ANY = "any"  # a model, a service or a pool


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: str
    kind: Kind
    subject: Subject
    description: str

    @property
    def is_latency(self) -> bool:
        return self.kind == Kind.LATENCY


RESOURCE_UNITS = {"cpu": "cores", "gpu": "GPUs", "memory": "GiB", "nodes": "nodes"}
RESOURCE_UNIT = {"cpu": "core", "gpu": "GPU", "memory": "GiB", "nodes": "node"}

_METRICS = [
    Metric(
        "request_count",
        "Requests",
        "requests",
        Kind.COUNTER,
        Subject.WORKLOAD,
        "Requests (predictions) served in the sample's interval: the increase of a request counter.",
    ),
    Metric(
        "error_count",
        "Failed requests",
        "requests",
        Kind.COUNTER,
        Subject.WORKLOAD,
        "Requests that failed in the sample's interval.",
    ),
    Metric(
        "latency_ms",
        "Latency",
        "ms",
        Kind.LATENCY,
        Subject.WORKLOAD,
        "Request latency in milliseconds; rollups keep p50, p95 and p99 of the samples.",
    ),
    Metric(
        "prediction_drift_psi",
        "Prediction drift (PSI)",
        "PSI",
        Kind.GAUGE,
        Subject.WORKLOAD,
        "Population stability index of the predictions against the reference window.",
    ),
    Metric(
        "accuracy",
        "Accuracy",
        "ratio",
        Kind.GAUGE,
        Subject.WORKLOAD,
        "An accuracy-type score (0-1) computed where labels arrive.",
    ),
    Metric(
        "units",
        "Units of service",
        "units",
        Kind.COUNTER,
        Subject.ANY,
        "Units of delivery (e.g. store-days, checkouts) in the sample's interval, from a batch job or business system.",
    ),
]
for _type, _unit in RESOURCE_UNITS.items():
    _METRICS += [
        Metric(
            f"{_type}_used",
            f"{_type.upper() if _type in ('cpu', 'gpu') else _type.capitalize()} used",
            _unit,
            Kind.GAUGE,
            Subject.POOL,
            f"Capacity in use, in {_unit}, at the sample's time.",
        ),
        Metric(
            f"{_type}_provisioned",
            f"{_type.upper() if _type in ('cpu', 'gpu') else _type.capitalize()} provisioned",
            _unit,
            Kind.GAUGE,
            Subject.POOL,
            f"Capacity provisioned (paid for), in {_unit}, at the sample's time.",
        ),
    ]

METRICS: dict[str, Metric] = {m.name: m for m in _METRICS}
METRIC_CHOICES = [(m.name, f"{m.label} ({m.name})") for m in _METRICS]
LATENCY_METRICS = frozenset(m.name for m in _METRICS if m.is_latency)


def used_metric(resource_type: str) -> str:
    return f"{resource_type}_used"


def provisioned_metric(resource_type: str) -> str:
    return f"{resource_type}_provisioned"
