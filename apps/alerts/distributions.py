"""Pushing prediction and feature distributions for drift rules: validation with exact messages, then storage.

A batch is stored whole or not at all. Each item names a model (slug), optionally a version, an environment
(slug) and a feature (absent: the model's predictions), a ``timestamp`` (the start of the window it describes),
``reference: true`` for a reference distribution (e.g. the training data), and exactly one of:

- ``samples``: raw values (numbers), for PSI and the K-S test;
- ``histogram``: ``{"edges": [e0, e1, ...], "counts": [c0, ...]}``, ``len(counts) == len(edges) - 1``;
- ``categories``: ``{"name": count, ...}`` for a categorical feature or a classifier's labels.

Pushing the same (model, version, environment, feature, timestamp, reference) again replaces it.
"""

import math
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import pairwise
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.catalog.models import Environment, MLModel, ModelVersion
from apps.core.exceptions import ApplicationError
from apps.telemetry.push import parse_timestamp

from .models import Distribution

MAX_ITEMS = 1000
MAX_SAMPLES = 100_000
FIELDS = ("model", "version", "environment", "feature", "timestamp", "reference", "samples", "histogram", "categories")


@dataclass
class ItemError:
    index: int | None
    field: str
    value: Any
    message: str

    def as_dict(self) -> dict:
        value = self.value if isinstance(self.value, str | int | float | bool | type(None)) else repr(self.value)[:200]
        return {"index": self.index, "field": self.field, "value": value, "message": self.message}

    def __str__(self) -> str:
        where = f"item {self.index}" if self.index is not None else "batch"
        return f"{where}, field '{self.field}': {self.message}"


class DistributionsRejected(ApplicationError):
    def __init__(self, message: str, errors: list[ItemError]):
        super().__init__(message)
        self.errors = errors


@dataclass
class PushResult:
    received: int
    stored: int
    errors: list[ItemError] = field(default_factory=list)


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _key_text(value) -> bool:
    """A string that can be a slug (PostgreSQL refuses a NUL character even in a query)."""
    return isinstance(value, str) and "\x00" not in value


def _validate_shape(i: int, item: dict, errors: list[ItemError]) -> dict | None:
    given = [k for k in ("samples", "histogram", "categories") if item.get(k) is not None]
    if len(given) != 1:
        errors.append(
            ItemError(i, "samples", None, f"give exactly one of samples, histogram or categories (got {len(given)})")
        )
        return None
    kind = given[0]
    value = item[kind]
    if kind == "samples":
        if not isinstance(value, list) or not value:
            errors.append(ItemError(i, "samples", value, "expected a non-empty list of numbers"))
            return None
        if len(value) > MAX_SAMPLES:
            errors.append(ItemError(i, "samples", len(value), f"at most {MAX_SAMPLES} samples; push a histogram"))
            return None
        bad = next((n for n, v in enumerate(value) if not _number(v)), None)
        if bad is not None:
            errors.append(ItemError(i, "samples", value[bad], f"sample {bad} is not a finite number"))
            return None
        return {"kind": "numeric", "samples": [float(v) for v in value], "n": len(value)}
    if kind == "histogram":
        edges = value.get("edges") if isinstance(value, dict) else None
        counts = value.get("counts") if isinstance(value, dict) else None
        if not isinstance(edges, list) or len(edges) < 2 or not all(_number(e) for e in edges):
            errors.append(ItemError(i, "histogram.edges", edges, "expected a list of at least 2 finite numbers"))
            return None
        if any(b <= a for a, b in pairwise(edges)):
            errors.append(ItemError(i, "histogram.edges", edges, "bin edges must increase strictly"))
            return None
        if not isinstance(counts, list) or len(counts) != len(edges) - 1:
            errors.append(
                ItemError(
                    i, "histogram.counts", counts, f"expected {len(edges) - 1} counts (one per bin between edges)"
                )
            )
            return None
        if not all(_number(c) and c >= 0 for c in counts):
            errors.append(ItemError(i, "histogram.counts", counts, "counts must be numbers at least 0"))
            return None
        return {
            "kind": "numeric",
            "edges": [float(e) for e in edges],
            "counts": [float(c) for c in counts],
            "n": round(sum(counts)),
        }
    if not isinstance(value, dict) or not value:
        errors.append(ItemError(i, "categories", value, "expected an object of category name to count"))
        return None
    if any("\x00" in k for k in value):
        errors.append(ItemError(i, "categories", value, "category names cannot contain NUL characters"))
        return None
    bad = next((k for k, c in value.items() if not (_number(c) and c >= 0)), None)
    if bad is not None:
        errors.append(ItemError(i, "categories", value[bad], f"the count of '{bad}' must be a number at least 0"))
        return None
    return {
        "kind": "categorical",
        "categories": {str(k): float(c) for k, c in value.items()},
        "n": round(sum(value.values())),
    }


def distributions_push(*, items: Any, now=None) -> PushResult:
    """Validate and store a batch of distributions (all or nothing)."""
    now = now or timezone.now()
    if not isinstance(items, list) or not items:
        raise DistributionsRejected(
            "'distributions' must be a non-empty list", [ItemError(None, "distributions", None, "required")]
        )
    if len(items) > MAX_ITEMS:
        raise DistributionsRejected(
            f"a batch holds at most {MAX_ITEMS} distributions; this one has {len(items)}",
            [ItemError(None, "distributions", len(items), f"at most {MAX_ITEMS}")],
        )
    dicts = [item for item in items if isinstance(item, dict)]
    models = {
        m.slug: m for m in MLModel.objects.filter(slug__in={d["model"] for d in dicts if _key_text(d.get("model"))})
    }
    environments = {
        e.slug: e
        for e in Environment.objects.filter(
            slug__in={d["environment"] for d in dicts if _key_text(d.get("environment"))}
        )
    }
    versions = {(v.model_id, v.version): v for v in ModelVersion.objects.filter(model__in=models.values())}
    errors: list[ItemError] = []
    rows: dict[str, Distribution] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(ItemError(i, "item", item, "expected an object"))
            continue
        before = len(errors)
        for name in sorted(set(item) - set(FIELDS)):
            errors.append(ItemError(i, name, item[name], f"unknown field; expected {', '.join(FIELDS)}"))
        model = models.get(item.get("model")) if isinstance(item.get("model"), str) else None
        if model is None:
            errors.append(ItemError(i, "model", item.get("model"), "required: the slug of a model in the catalog"))
        version = None
        if item.get("version") not in (None, ""):
            version = versions.get((model.pk, str(item["version"]))) if model else None
            if model is not None and version is None:
                errors.append(ItemError(i, "version", item["version"], f"model '{model.slug}' has no such version"))
        environment = None
        if item.get("environment") not in (None, ""):
            environment = environments.get(item["environment"])
            if environment is None:
                errors.append(ItemError(i, "environment", item["environment"], "no environment with this slug"))
        feature = item.get("feature") or ""
        if not isinstance(feature, str) or len(feature) > 100 or "\x00" in feature:
            errors.append(ItemError(i, "feature", feature, "expected a feature name of at most 100 characters"))
        reference = item.get("reference", False)
        if not isinstance(reference, bool):
            errors.append(ItemError(i, "reference", reference, "expected true or false"))
        ts = None
        if "timestamp" not in item:
            errors.append(
                ItemError(i, "timestamp", None, "required: the start of the window, RFC 3339 or Unix seconds")
            )
        else:
            try:
                ts = parse_timestamp(item["timestamp"])
            except ValueError as exc:
                errors.append(ItemError(i, "timestamp", item["timestamp"], str(exc)))
            else:
                if ts > now + timedelta(minutes=5):
                    errors.append(ItemError(i, "timestamp", item["timestamp"], "is in the future"))
        shape = _validate_shape(i, item, errors)
        if len(errors) > before or shape is None:
            continue
        key = Distribution.make_key(
            model.pk, version and version.pk, environment and environment.pk, feature, ts, reference
        )
        rows[key] = Distribution(
            key=key,
            model=model,
            version=version,
            environment=environment,
            feature=feature,
            ts=ts,
            is_reference=reference,
            kind=shape["kind"],
            samples=shape.get("samples"),
            edges=shape.get("edges"),
            counts=shape.get("counts"),
            categories=shape.get("categories"),
            n=shape["n"],
        )
    if errors:
        bad = len({e.index for e in errors})
        raise DistributionsRejected(f"{bad} of {len(items)} distributions are invalid, so nothing was stored", errors)
    with transaction.atomic():
        Distribution.objects.bulk_create(
            list(rows.values()),
            update_conflicts=True,
            unique_fields=["key"],
            update_fields=["kind", "samples", "edges", "counts", "categories", "n"],
            batch_size=200,
        )
    return PushResult(received=len(items), stored=len(rows))
