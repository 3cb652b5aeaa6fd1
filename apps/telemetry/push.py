"""Validation of telemetry points, as the push API receives them and as Prometheus pulls produce them.

Every point is checked on its own and each problem is reported with the point's index, the field, the value
and what was expected; the catalog references of a whole batch are resolved in one query per kind.
"""

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apps.catalog.models import CapacityPool, Environment, Location, MLModel, ModelVersion, Service

from .metrics import METRICS, Kind, Subject

MAX_POINTS_PER_BATCH = 10_000
MAX_FUTURE = timedelta(minutes=5)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
REF_FIELDS = ("model", "version", "environment", "service", "pool", "location")
FIELDS = ("metric", "timestamp", "value", *REF_FIELDS)
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


@dataclass(frozen=True)
class Dims:
    """Catalog ids identifying a series besides its metric (None: not part of the identity)."""

    model: int | None = None
    version: int | None = None
    environment: int | None = None
    service: int | None = None
    pool: int | None = None
    location: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return {f: getattr(self, f) for f in REF_FIELDS}


@dataclass(frozen=True)
class PointIn:
    metric: str
    ts: datetime
    value: float
    dims: Dims


@dataclass(frozen=True)
class PointError:
    index: int | None
    field: str
    value: Any
    message: str

    def as_dict(self) -> dict[str, Any]:
        value = self.value if isinstance(self.value, str | int | float | bool | type(None)) else repr(self.value)
        return {"index": self.index, "field": self.field, "value": value, "message": self.message}

    def __str__(self) -> str:
        where = f"point {self.index}" if self.index is not None else "batch"
        return f"{where}, field '{self.field}' ({self.value!r}): {self.message}"


class CatalogLookup:
    """The catalog rows a batch refers to, fetched once: slugs for models, environments, services and pools,
    codes for locations, and (model, version) pairs for versions."""

    def __init__(self, refs: Iterable[Mapping[str, Any]]) -> None:
        wanted: dict[str, set[str]] = {f: set() for f in REF_FIELDS}
        for ref in refs:
            for f in REF_FIELDS:
                # A NUL cannot be in a slug, and PostgreSQL refuses it even in a query: such a key is unknown.
                if isinstance(ref.get(f), str) and "\x00" not in ref[f]:
                    wanted[f].add(ref[f])
        self.models = {m.slug: m for m in MLModel.objects.filter(slug__in=wanted["model"])}
        self.environments = {e.slug: e for e in Environment.objects.filter(slug__in=wanted["environment"])}
        self.services = {s.slug: s for s in Service.objects.filter(slug__in=wanted["service"])}
        self.pools = {p.slug: p for p in CapacityPool.objects.filter(slug__in=wanted["pool"])}
        self.locations = {loc.code: loc for loc in Location.objects.filter(code__in=wanted["location"])}
        self.versions = {
            (v.model_id, v.version): v
            for v in ModelVersion.objects.filter(model__in=self.models.values(), version__in=wanted["version"])
        }

    def resolve(self, metric: str, refs: Mapping[str, Any], index: int | None = None) -> tuple[Dims | None, list]:
        """Catalog ids for a point's references, normalised (a model implies its service, a pool its
        environment and location), or the errors that stop it."""
        errors: list[PointError] = []

        def err(field: str, message: str) -> None:
            errors.append(PointError(index, field, refs.get(field), message))

        for f in REF_FIELDS:
            if refs.get(f) is not None and not isinstance(refs[f], str):
                err(f, "expected a string (the catalog's slug or code)")
        if errors:
            return None, errors

        def find(field: str, table: dict, noun: str):
            key = refs.get(field)
            if key in (None, ""):
                return None
            row = table.get(key)
            if row is None:
                err(field, f"no {noun} with this {'code' if field == 'location' else 'slug'} in the catalog")
            return row

        model = find("model", self.models, "ML model")
        environment = find("environment", self.environments, "environment")
        service = find("service", self.services, "service")
        pool = find("pool", self.pools, "capacity pool")
        location = find("location", self.locations, "location")
        version = None
        if refs.get("version"):
            if not refs.get("model"):
                err("version", "a version needs its model")
            elif model is not None:
                version = self.versions.get((model.pk, refs["version"]))
                if version is None:
                    err("version", f"model '{model.slug}' has no version with this name in the catalog")
        if model is not None:
            if service is not None and service.pk != model.service_id:
                err("service", f"model '{model.slug}' belongs to another service")
            service_id = model.service_id
        else:
            service_id = service.pk if service else None
        environment_id = environment.pk if environment else None
        location_id = location.pk if location else None
        if pool is not None:
            if environment is not None and environment.pk != pool.environment_id:
                err("environment", f"pool '{pool.slug}' is in another environment")
            if location is not None and pool.location_id and location.pk != pool.location_id:
                err("location", f"pool '{pool.slug}' is at another location")
            environment_id = pool.environment_id
            location_id = location_id or pool.location_id

        subject = METRICS[metric].subject
        if subject == Subject.POOL and refs.get("pool") in (None, ""):
            err("pool", f"{metric} describes a capacity pool: name the pool")
        elif subject == Subject.WORKLOAD and not (refs.get("model") or refs.get("service")):
            err("model", f"{metric} describes a workload: name a model (or a service)")
        elif subject == Subject.ANY and not (refs.get("model") or refs.get("service") or refs.get("pool")):
            err("model", f"{metric} needs a model, a service or a pool")
        if errors:
            return None, errors
        return (
            Dims(
                model=model.pk if model else None,
                version=version.pk if version else None,
                environment=environment_id,
                service=service_id,
                pool=pool.pk if pool else None,
                location=location_id,
            ),
            [],
        )


def parse_timestamp(raw: Any) -> datetime:
    """Unix seconds (a number) or an RFC 3339 string with a time zone; raises ValueError saying what is wrong."""
    if isinstance(raw, bool):
        raise ValueError("expected Unix seconds or an RFC 3339 date-time such as 2026-11-27T08:00:00Z")
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise ValueError("expected a finite number of Unix seconds")
        if raw > 1e11:
            raise ValueError("Unix time in seconds is expected; this looks like milliseconds")
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=round(raw * 1_000_000))
    if isinstance(raw, str):
        text = raw.strip()
        if not _RFC3339.match(text):
            raise ValueError(
                "expected an RFC 3339 date-time with a time zone, e.g. 2026-11-27T08:00:00Z, or Unix seconds"
            )
        try:
            parsed = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"not a real date-time ({exc})") from None
        return parsed.astimezone(UTC)
    raise ValueError("expected Unix seconds or an RFC 3339 date-time such as 2026-11-27T08:00:00Z")


def parse_value(raw: Any, metric: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError("expected a number")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(value):
        raise ValueError("expected a finite number (NaN and infinities are not stored)")
    definition = METRICS[metric]
    if value < 0 and (definition.kind in (Kind.COUNTER, Kind.LATENCY) or definition.subject == Subject.POOL):
        raise ValueError(f"{metric} cannot be negative")
    return value


def parse_points(
    items: list, *, now: datetime, purged_before: datetime | None = None
) -> tuple[list[PointIn], list[PointError]]:
    """Validate a batch. Returns the valid points and one error per problem (a point may have several)."""
    catalog = CatalogLookup(item for item in items if isinstance(item, dict))
    valid: list[PointIn] = []
    errors: list[PointError] = []
    seen: dict[tuple, tuple[int, float]] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(PointError(i, "point", item, "expected an object with metric, timestamp and value"))
            continue
        point_errors: list[PointError] = []
        unknown = sorted(set(item) - set(FIELDS))
        for name in unknown:
            point_errors.append(PointError(i, name, item[name], f"unknown field; expected {', '.join(FIELDS)}"))
        metric = item.get("metric")
        if metric is None:
            point_errors.append(PointError(i, "metric", None, "required"))
        elif not isinstance(metric, str) or metric not in METRICS:
            point_errors.append(
                PointError(i, "metric", metric, f"unknown metric; expected one of {', '.join(METRICS)}")
            )
            metric = None
        ts = value = None
        if "timestamp" not in item:
            point_errors.append(PointError(i, "timestamp", None, "required"))
        else:
            try:
                ts = parse_timestamp(item["timestamp"])
            except ValueError as exc:
                point_errors.append(PointError(i, "timestamp", item["timestamp"], str(exc)))
            else:
                if ts > now + MAX_FUTURE:
                    point_errors.append(PointError(i, "timestamp", item["timestamp"], "is in the future"))
                elif ts < EARLIEST:
                    point_errors.append(PointError(i, "timestamp", item["timestamp"], "is before 2000-01-01"))
                elif purged_before is not None and ts < purged_before:
                    point_errors.append(
                        PointError(
                            i,
                            "timestamp",
                            item["timestamp"],
                            f"is before {purged_before:%Y-%m-%d %H:%M}Z: raw telemetry before then has been purged "
                            "after its retention, so its rollups are final",
                        )
                    )
        if "value" not in item or item["value"] is None:
            point_errors.append(PointError(i, "value", None, "required"))
        elif metric is not None:
            try:
                value = parse_value(item["value"], metric)
            except ValueError as exc:
                point_errors.append(PointError(i, "value", item["value"], str(exc)))
        dims = None
        if metric is not None:
            dims, ref_errors = catalog.resolve(metric, item, i)
            point_errors += ref_errors
        if not point_errors:
            identity = (metric, dims, ts)
            if identity in seen:
                first, first_value = seen[identity]
                if first_value == value:
                    continue  # an exact repeat within the batch is stored once
                point_errors.append(
                    PointError(
                        i, "value", item["value"], f"point {first} has the same series and timestamp with {first_value}"
                    )
                )
            else:
                seen[identity] = (i, value)
        if point_errors:
            errors += point_errors
        else:
            valid.append(PointIn(metric=metric, ts=ts, value=value, dims=dims))
    return valid, errors
