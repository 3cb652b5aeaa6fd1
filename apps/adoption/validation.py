"""Checks every incoming event (API batch or CSV row) and says exactly what is wrong with each one.

An event is a JSON object::

    {"event_id": "<uuid>", "product": "<product slug>", "user_id": "emp-00042", "event": "trial_started",
     "timestamp": "2026-05-01T10:00:00Z", "properties": {"location": "store-0042", "role": "store_manager"}}

``event`` is a standard adoption event (:class:`~apps.adoption.models.EventName`) or one of the
product's usage events. ``properties.location`` must be a known location code (a store such as
``store-0042`` or a region such as ``region-london``); ``properties.rating`` (a whole number 1-5) is
required on ``rating_submitted``. Timestamps are ISO 8601; one without an offset is read as UTC; one
more than ten minutes ahead of the server clock is refused.
"""

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from apps.catalog.models import Location, Product

from .models import EventName

MAX_BATCH = 1_000
MAX_FUTURE = timedelta(minutes=10)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
BACKFILL_AFTER = timedelta(days=2)
MAX_USER_ID = 128
MAX_ROLE = 64
MAX_PROPERTIES_BYTES = 2_000
FIELDS = ("event_id", "product", "user_id", "event", "timestamp", "properties")
FIELD_SET = frozenset(FIELDS)
STANDARD_EVENTS = frozenset(EventName.ALL)
REQUIRED = ("event_id", "product", "user_id", "event", "timestamp")


@dataclass(frozen=True)
class EventError:
    index: int  # position in the batch (0-based) or row number in a file
    field: str
    message: str
    event_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "event_id": self.event_id, "field": self.field, "message": self.message}


@dataclass(slots=True)
class ValidEvent:
    event_id: str  # canonical form: 32 lower-case hex digits in 8-4-4-4-12 groups
    product_id: int
    user_id: str
    name: str
    timestamp: datetime
    day: date
    location_id: int | None
    region_id: int | None
    role: str
    rating: int | None
    properties: dict = field(default_factory=dict)
    properties_json: str = "{}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_uuid(value: Any) -> str | None:
    """The UUID in its canonical text form, or None. Cheap for ids already in that form (the usual case)."""
    if isinstance(value, str):
        lowered = value.lower()
        if _CANONICAL_UUID.fullmatch(lowered):
            return lowered
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def parse_timestamp(value: Any) -> datetime:
    """ISO 8601 to an aware UTC datetime; raises ValueError with the reason."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected an ISO 8601 date-time such as 2026-05-01T10:00:00Z, got {_short(value)}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{_short(value)} is not an ISO 8601 date-time (e.g. 2026-05-01T10:00:00Z)") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class _Lookups:
    """Products and locations a batch refers to, fetched with one query each."""

    def __init__(self, records: Sequence[Any]) -> None:
        slugs, codes = set(), set()
        for record in records:
            if not isinstance(record, dict):
                continue
            # A NUL cannot be in a slug or code, and PostgreSQL refuses it even in a query: such a key is unknown.
            if isinstance(record.get("product"), str) and "\x00" not in record["product"]:
                slugs.add(record["product"])
            props = record.get("properties")
            if isinstance(props, dict) and isinstance(props.get("location"), str) and "\x00" not in props["location"]:
                codes.add(props["location"])
        self.products: dict[str, tuple[int, frozenset[str]]] = {
            slug: (pk, frozenset(names or []))
            for pk, slug, names in Product.objects.filter(slug__in=slugs).values_list("pk", "slug", "usage_event_names")
        }
        self.locations: dict[str, tuple[int, int | None]] = {}
        for pk, code, kind, parent_id in Location.objects.filter(code__in=codes).values_list(
            "pk", "code", "kind", "parent_id"
        ):
            region = pk if kind == Location.Kind.REGION else parent_id
            self.locations[code] = (pk, region)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _fields_with_nul(record: dict) -> list[str]:
    """The fields holding a NUL character anywhere (PostgreSQL stores no NUL in text or JSON)."""
    return [str(k).replace("\x00", "\\x00") for k, v in record.items() if _has_nul(k) or _has_nul(v)]


def validate_events(
    records: Sequence[Any], *, now: datetime, index_base: int = 0
) -> tuple[list[ValidEvent], list[EventError]]:
    """Every event checked; returns the valid ones and one error per problem found (several per event)."""
    lookups = _Lookups(records)
    latest = now + MAX_FUTURE
    valid: list[ValidEvent] = []
    errors: list[EventError] = []
    for offset, record in enumerate(records):
        index = index_base + offset
        if not isinstance(record, dict):
            errors.append(EventError(index, "", f"expected a JSON object, got {type(record).__name__}"))
            continue
        get = record.get
        raw_id, slug, user_id, name, raw_ts = (
            get("event_id"),
            get("product"),
            get("user_id"),
            get("event"),
            get("timestamp"),
        )
        event_id_text = raw_id if isinstance(raw_id, str) else None
        problems: list[tuple[str, str]] = []

        if not FIELD_SET.issuperset(record):
            unknown = sorted(set(record) - FIELD_SET)
            problems.append((unknown[0], f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}"))
        for field_name, value in zip(REQUIRED, (raw_id, slug, user_id, name, raw_ts), strict=True):
            if value is None or value == "":
                problems.append((field_name, "is required"))
        problems += [(f, "text must not contain NUL (\\x00) characters") for f in _fields_with_nul(record)]

        event_id = None
        if raw_id is not None and raw_id != "":
            event_id = canonical_uuid(raw_id)
            if event_id is None:
                problems.append(("event_id", f"{_short(raw_id)} is not a UUID"))

        product = None
        if slug is not None and slug != "":
            product = lookups.products.get(slug) if isinstance(slug, str) else None
            if product is None:
                problems.append(("product", f"unknown product {_short(slug)}"))

        if isinstance(user_id, int) and not isinstance(user_id, bool):
            user_id = str(user_id)
        if user_id is not None and user_id != "":
            stripped = user_id.strip() if isinstance(user_id, str) else ""
            if not stripped:
                problems.append(("user_id", f"expected a non-empty string, got {_short(user_id)}"))
            elif len(stripped) > MAX_USER_ID:
                problems.append(("user_id", f"is longer than {MAX_USER_ID} characters"))
            else:
                user_id = stripped

        known = isinstance(name, str) and (name in STANDARD_EVENTS or (product is not None and name in product[1]))
        if product is not None and name is not None and name != "" and not known:
            usage = ", ".join(sorted(product[1])) or "none configured"
            problems.append(
                (
                    "event",
                    f"{_short(name)} is neither a standard adoption event ({', '.join(EventName.ALL)}) "
                    f"nor a usage event of product {slug!r} ({usage})",
                )
            )

        timestamp = None
        if raw_ts is not None and raw_ts != "":
            try:
                timestamp = parse_timestamp(raw_ts)
            except ValueError as exc:
                problems.append(("timestamp", str(exc)))
            else:
                if timestamp > latest:
                    problems.append(
                        (
                            "timestamp",
                            f"{raw_ts} is in the future (more than {int(MAX_FUTURE.total_seconds() // 60)}"
                            f" minutes after the server time {now:%Y-%m-%dT%H:%M:%SZ})",
                        )
                    )
                elif timestamp < EARLIEST:
                    problems.append(("timestamp", f"{raw_ts} is before {EARLIEST:%Y-%m-%d}"))

        props = get("properties")
        location_id = region_id = rating = None
        role, props_json = "", "{}"
        if props is None:
            props = {}
        if not isinstance(props, dict):
            problems.append(("properties", f"expected a JSON object, got {type(props).__name__}"))
            props = {}
        else:
            props_json = json.dumps(props)  # parsed from JSON (API) or a CSV: always serialisable
            if len(props_json) > MAX_PROPERTIES_BYTES:
                problems.append(("properties", f"is larger than {MAX_PROPERTIES_BYTES} bytes as JSON"))
            code = props.get("location")
            if code not in (None, ""):
                found = lookups.locations.get(code) if isinstance(code, str) else None
                if found is None:
                    problems.append(("properties.location", f"unknown location code {_short(code)}"))
                else:
                    location_id, region_id = found
            raw_role = props.get("role")
            if raw_role not in (None, ""):
                if not isinstance(raw_role, str) or len(raw_role.strip()) > MAX_ROLE:
                    problems.append(("properties.role", f"expected a string of at most {MAX_ROLE} characters"))
                else:
                    role = raw_role.strip()
            if name == EventName.RATING_SUBMITTED:
                raw_rating = props.get("rating")
                if isinstance(raw_rating, int) and not isinstance(raw_rating, bool) and 1 <= raw_rating <= 5:
                    rating = raw_rating
                else:
                    problems.append(
                        ("properties.rating", f"rating_submitted needs a whole number 1-5, got {_short(raw_rating)}")
                    )

        if problems:
            errors.extend(EventError(index, f, message, event_id_text) for f, message in problems)
            continue
        valid.append(
            ValidEvent(
                event_id=event_id,
                product_id=product[0],
                user_id=user_id,
                name=name,
                timestamp=timestamp,
                day=timestamp.date(),
                location_id=location_id,
                region_id=region_id,
                role=role,
                rating=rating,
                properties=props,
                properties_json=props_json,
            )
        )
    return valid, errors
