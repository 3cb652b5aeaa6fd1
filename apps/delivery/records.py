"""The four delivery record kinds, their columns, and row validation shared by CSV files, the API and webhooks.

A record is a mapping of column name to value: strings from a CSV file, JSON values from the API. Each
column parses its value or says what it expected, so every refusal names the row, the column, the
value and the expected form.
"""

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.dateparse import parse_datetime

SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
MAX_ERRORS = 50


@dataclass(frozen=True)
class RowError:
    """One refused value. ``row`` counts a CSV file's header as row 1; API items are numbered from 0."""

    row: int
    column: str
    value: str
    expected: str
    row_label: str = "row"

    @property
    def message(self) -> str:
        shown = repr(self.value) if self.value != "" else "(empty)"
        return f"{self.row_label} {self.row}, {self.column}: {shown}, expected {self.expected}"

    def as_dict(self) -> dict[str, Any]:
        return {self.row_label: self.row, "column": self.column, "value": self.value, "expected": self.expected}


class RecordError(ValueError):
    """A value did not parse; the message says what was expected."""


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


# --- Parsers: each takes a non-blank value and returns the clean value or raises RecordError -------------


def text(max_length: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str | int):
            raise RecordError(f"text of at most {max_length} characters")
        value = str(value).strip()
        if len(value) > max_length:
            raise RecordError(f"text of at most {max_length} characters (got {len(value)})")
        if "\x00" in value:
            raise RecordError(f"text of at most {max_length} characters, without NUL characters")
        return value

    return parse


def slug(value: Any) -> str:
    value = str(value).strip()
    if not re.fullmatch(r"[-a-zA-Z0-9_]+", value):
        raise RecordError("a slug: letters, digits, hyphens and underscores")
    return value


def decimal(*, min_value: Decimal, places: int) -> Callable[[Any], Decimal]:
    expected = f"a number ≥ {min_value} with at most {places} decimal places"

    def parse(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            raise RecordError(expected)
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise RecordError(expected) from None
        if not number.is_finite() or number < min_value or -number.as_tuple().exponent > places:
            raise RecordError(expected)
        return number

    return parse


def choice(options: Iterable[str]) -> Callable[[Any], str]:
    options = list(options)
    expected = "one of " + ", ".join(options)

    def parse(value: Any) -> str:
        value = str(value).strip().lower()
        if value not in options:
            raise RecordError(expected)
        return value

    return parse


def timestamp(value: Any) -> datetime:
    """ISO 8601; a time without an offset is read as UTC."""
    expected = "an ISO 8601 date-time, e.g. 2026-03-04T10:15:00Z (no offset means UTC)"
    if not isinstance(value, str):
        raise RecordError(expected)
    raw = value.strip()
    try:
        parsed = parse_datetime(raw.replace(" ", "T", 1) if "T" not in raw else raw)
    except ValueError:
        parsed = None
    if parsed is None:
        raise RecordError(expected)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def sha(value: Any) -> str:
    value = str(value).strip().lower()
    if not SHA_RE.match(value):
        raise RecordError("a full commit SHA: 40 (or 64) hexadecimal characters")
    return value


def sha_list(value: Any) -> list[str]:
    """Commit SHAs as a JSON list or separated by spaces, commas or semicolons; duplicates are dropped."""
    items = value if isinstance(value, list) else re.split(r"[\s,;]+", str(value).strip())
    result: list[str] = []
    for item in items:
        if _blank(item):
            continue
        try:
            parsed = sha(item)
        except RecordError:
            raise RecordError(
                f"full commit SHAs (40 or 64 hexadecimal characters) separated by spaces; {str(item)!r} is not one"
            ) from None
        if parsed not in result:
            result.append(parsed)
    return result


# --- Schemas ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    parse: Callable[[Any], Any]
    required: bool = True
    help: str = ""
    type: str = "string"  # for the API documentation: string | number | date-time | list


@dataclass(frozen=True)
class Schema:
    kind: str
    id_column: str
    columns: tuple[Column, ...]
    example: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_names(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


FEATURES = Schema(
    kind="features",
    id_column="feature_id",
    columns=(
        Column("feature_id", text(200), help="The feature's id in its source, e.g. a ticket key (PRICE-142)."),
        Column("title", text(300)),
        Column("service", slug, help="Slug of a catalog service."),
        Column("team", slug, required=False, help="Slug of a catalog team; empty: the service's team."),
        Column("effort", decimal(min_value=Decimal("0"), places=2), type="number", help="Hours or story points."),
        Column(
            "effort_unit",
            choice(["hours", "points"]),
            required=False,
            help="hours (default) or points; points need the team's hours-per-point conversion.",
        ),
        Column(
            "changes",
            sha_list,
            required=False,
            type="list",
            help="The feature's commits (full SHAs). It ships when all of them are live in production.",
        ),
    ),
    example={
        "feature_id": "PRICE-142",
        "title": "Weekend elasticity model",
        "service": "price-forecast",
        "team": "pricing-ml",
        "effort": "13",
        "effort_unit": "points",
        "changes": ["3f2a9c0d1e4b5a6978c8d7e6f5a4b3c2d1e0f9a8"],
    },
)

DEPLOYMENTS = Schema(
    kind="deployments",
    id_column="deployment_id",
    columns=(
        Column("deployment_id", text(200), help="The deployment's id in its source."),
        Column("service", slug, help="Slug of a catalog service."),
        Column("environment", slug, help="Slug of a catalog environment, or production/staging/development."),
        Column("deployed_at", timestamp, type="date-time", help="When the deployment finished."),
        Column(
            "status",
            choice(["success", "failure", "in_progress"]),
            help="success or failure; in_progress is kept but counts nowhere until it finishes.",
        ),
        Column("commit", sha, help="The commit deployed (full SHA)."),
        Column("changes", sha_list, required=False, type="list", help="Other commits the deployment brought live."),
    ),
    example={
        "deployment_id": "deploy-9431",
        "service": "price-forecast",
        "environment": "prod",
        "deployed_at": "2026-10-14T09:30:00Z",
        "status": "success",
        "commit": "3f2a9c0d1e4b5a6978c8d7e6f5a4b3c2d1e0f9a8",
        "changes": [],
    },
)

CHANGES = Schema(
    kind="changes",
    id_column="commit",
    columns=(
        Column("commit", sha, help="Full commit SHA."),
        Column("committed_at", timestamp, type="date-time", help="The commit time."),
        Column("service", slug, required=False, help="Slug of a catalog service (optional)."),
    ),
    example={
        "commit": "3f2a9c0d1e4b5a6978c8d7e6f5a4b3c2d1e0f9a8",
        "committed_at": "2026-10-13T16:05:00Z",
        "service": "price-forecast",
    },
)

INCIDENTS = Schema(
    kind="incidents",
    id_column="incident_id",
    columns=(
        Column("incident_id", text(200), help="The incident's id in its source; updates reuse it."),
        Column("service", slug, help="Slug of a catalog service."),
        Column("title", text(300), required=False),
        Column("started_at", timestamp, type="date-time"),
        Column("resolved_at", timestamp, required=False, type="date-time", help="Empty while the incident is open."),
        Column("deployment_id", text(200), required=False, help="The deployment that caused it, if any."),
        Column(
            "deployment_source",
            slug,
            required=False,
            help="The source of that deployment (slug); empty: the incident's own source.",
        ),
    ),
    example={
        "incident_id": "INC-2291",
        "service": "price-forecast",
        "title": "Forecasts stale after deploy",
        "started_at": "2026-10-14T10:02:00Z",
        "resolved_at": "2026-10-14T11:40:00Z",
        "deployment_id": "deploy-9431",
        "deployment_source": "",
    },
)

SCHEMAS: dict[str, Schema] = {s.kind: s for s in (FEATURES, DEPLOYMENTS, CHANGES, INCIDENTS)}


@dataclass
class ParsedRow:
    row: int
    values: dict[str, Any]


class RowCollector:
    """Collects row errors, up to MAX_ERRORS, so one message can list what to fix."""

    def __init__(self, row_label: str = "row") -> None:
        self.row_label = row_label
        self.errors: list[RowError] = []
        self.truncated = False

    def add(self, row: int, column: str, value: Any, expected: str) -> None:
        if len(self.errors) >= MAX_ERRORS:
            self.truncated = True
            return
        self.errors.append(RowError(row, _storable(column), _storable(shown(value)), expected, self.row_label))


def _storable(text: str, limit: int = 300) -> str:
    """A refused value as the errors keep it: NUL made visible (the database refuses it), at most ``limit`` long."""
    text = text.replace("\x00", "\\x00")
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"


def check_columns(schema: Schema, names: Iterable[str], errors: RowCollector, *, row: int) -> bool:
    """Unknown and missing columns are errors: a misspelt column must not silently drop its data."""
    present = list(names)
    ok = True
    for position, name in enumerate(present, start=1):
        if name not in schema.names:
            label = name.strip() or f"(column {position}, unnamed)"
            errors.add(row, label, name, f"one of the columns {', '.join(schema.names)}")
            ok = False
    for name in schema.required_names:
        if name not in present:
            errors.add(row, name, "", f"a column named {name!r} (required)")
            ok = False
    return ok


def parse_rows(
    schema: Schema, records: Iterable[tuple[int, Mapping[str, Any]]], errors: RowCollector, *, check_keys: bool
) -> list[ParsedRow]:
    """Parse each record's values; duplicate ids within one batch are refused (which one would win?)."""
    parsed: list[ParsedRow] = []
    seen: dict[str, int] = {}
    for row, record in records:
        if check_keys:
            check_columns(schema, record.keys(), errors, row=row)
        values: dict[str, Any] = {}
        for column in schema.columns:
            raw = record.get(column.name)
            if _blank(raw) or (isinstance(raw, list) and not raw):
                if column.required:
                    errors.add(row, column.name, raw, "a value (the column is required)")
                values[column.name] = [] if column.type == "list" else None
                continue
            try:
                values[column.name] = column.parse(raw)
            except RecordError as exc:
                errors.add(row, column.name, raw, str(exc))
                values[column.name] = None
        key = values.get(schema.id_column)
        if key:
            if key in seen:
                errors.add(
                    row,
                    schema.id_column,
                    key,
                    f"a unique {schema.id_column}; {errors.row_label} {seen[key]} has it too",
                )
            else:
                seen[key] = row
        parsed.append(ParsedRow(row, values))
    return parsed
