"""Reading cells: text to Decimal, UTC datetime and key-value dicts, with null and placeholder handling."""

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from .base import DATETIME_EXPECTED, DECIMAL_EXPECTED, CellError, show
from .conformance import ConformanceReport

NULL_LITERAL = "NULL"
# Plain decimals and E-notation; no thousands separators, symbols, NaN or Infinity. The exponent is
# capped at three digits so products and sums of parsed values can never overflow the decimal context.
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?", re.ASCII)
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r" ?(Z|UTC|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII,  # \d would otherwise accept any script's digits
)
_STRICT_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)
# Azure cost details exports write US dates, optionally with a 12-hour time.
_US_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})(?: (\d{1,2}):(\d{2})(?::(\d{2}))? ?([AaPp][Mm])?)?", re.ASCII)


def parse_decimal(value: object) -> Decimal:
    """A Decimal from text (or a Parquet number), never through float arithmetic; ValueError if not a number."""
    if isinstance(value, str):
        text = value.strip()
        if not _DECIMAL.fullmatch(text):
            raise ValueError(value)
        return Decimal(text)
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # repr gives the shortest text that round-trips, i.e. the digits the exporter meant.
        return parse_decimal(repr(value))
    if isinstance(value, Decimal) and value.is_finite():
        return value
    raise ValueError(value)


def parse_datetime(value: object) -> tuple[datetime, bool]:
    """An aware UTC datetime and whether the text was in the strict FOCUS form; ValueError if unreadable.

    Accepts ISO 8601 with or without ``T``/``Z``/offset, date-only values, BigQuery's ``... UTC`` and US
    ``MM/DD/YYYY`` dates. Values without a zone are UTC.
    """
    try:
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=UTC)
            return moment.astimezone(UTC), True
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=UTC), True
        if isinstance(value, str):
            text = value.strip()
            if match := _ISO.fullmatch(text):
                return _from_iso(match), bool(_STRICT_ISO.fullmatch(text))
            if match := _US_DATE.fullmatch(text):
                return _from_us(match), False
    except OverflowError as exc:  # an offset that moves the moment out of the calendar's range
        raise ValueError(value) from exc
    raise ValueError(value)


def _from_iso(match: re.Match[str]) -> datetime:
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz = UTC
    if zone and zone not in ("Z", "UTC"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0)))
    moment = datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro, tzinfo=tz
    )
    return moment.astimezone(UTC)


def _from_us(match: re.Match[str]) -> datetime:
    month, day, year, hour, minute, second, meridiem = match.groups()
    h = int(hour or 0)
    if meridiem:
        if not 1 <= h <= 12:
            raise ValueError(match.string)
        h = h % 12 + (12 if meridiem.lower() == "pm" else 0)
    return datetime(int(year), int(month), int(day), h, int(minute or 0), int(second or 0), tzinfo=UTC)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python's json accepts them, JSON does not


def loads(text: str) -> Any:
    """JSON with numbers as Decimal (no float) and duplicate keys kept as pairs for the caller to judge."""
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant, object_pairs_hook=_Pairs)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


class _Pairs(list):
    """A decoded JSON object as its key/value pairs, so duplicate keys can be reported."""


def _with_dicts(value: Any) -> Any:
    """Decoded JSON with objects as dicts (the last duplicate key wins) and numbers kept as Decimal."""
    if isinstance(value, _Pairs):
        return {k: _with_dicts(v) for k, v in value}
    if isinstance(value, list):
        return [_with_dicts(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """Decoded JSON back to plain dicts, lists and floats, as a JSON column stores them (tags are not money)."""
    if isinstance(value, _Pairs):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        number = float(value)
        return number if math.isfinite(number) else str(value)  # JSON columns cannot store 1e400 as a number
    return value


class Columns:
    """Finds a format's canonical column names in a file's header.

    Handles case-insensitive headers (Azure), alternative names (old exports) and a renaming rule
    (AWS CUR 2.0 spells the legacy names in snake_case).
    """

    def __init__(
        self,
        header: Sequence[str],
        *,
        case_insensitive: bool = False,
        aliases: Mapping[str, tuple[str, ...]] | None = None,
        rename: Callable[[str], str] | None = None,
    ) -> None:
        self.header = list(header)
        self._present = set(self.header)
        self._lower = {name.lower(): name for name in self.header} if case_insensitive else {}
        self._aliases = aliases or {}
        self._rename = rename
        self._cache: dict[str, str | None] = {}

    def find(self, name: str) -> str | None:
        """The header's spelling of a canonical column, or None when the file lacks it."""
        try:
            return self._cache[name]
        except KeyError:
            found = self._cache[name] = self._find(name)
            return found

    def _find(self, name: str) -> str | None:
        for candidate in (name, *self._aliases.get(name, ())):
            if self._rename:
                candidate = self._rename(candidate)
            if candidate in self._present:
                return candidate
            if candidate.lower() in self._lower:
                return self._lower[candidate.lower()]
        return None

    def label(self, name: str) -> str:
        """How to name a column in a message: the header's spelling if present, else the expected one."""
        return self.find(name) or (self._rename(name) if self._rename else name)

    def missing(self, names: Iterable[str]) -> list[str]:
        return [self.label(name) for name in names if self.find(name) is None]


class Cells:
    """Typed access to the cells of the current record, recording conformance findings as it reads.

    One instance is reused for every record of a file; ``load`` points it at the next record.
    """

    def __init__(
        self,
        columns: Columns,
        report: ConformanceReport,
        *,
        placeholders: frozenset[str] = frozenset(),
        focus_rules: bool = False,
    ) -> None:
        self.columns = columns
        self.report = report
        self.placeholders = placeholders
        # Empty strings and date/time forms break FOCUS format rules, but are normal in provider exports.
        self.focus_rules = focus_rules
        self.row = 0
        self.extras: dict[str, Any] = {}
        self._record: Mapping[str, Any] = {}

    def load(self, row: int, record: Mapping[str, Any]) -> None:
        self.row = row
        self._record = record
        self.extras = {}

    def note(self, rule: str, column: str, value: object = None) -> None:
        self.report.note(rule, row=self.row, column=column, value=value)

    def _get(self, name: str) -> tuple[str, Any]:
        """The column's header spelling and its value, with written-out nulls turned into None."""
        column = self.columns.find(name)
        if column is None:
            return self.columns.label(name), None
        value = self._record.get(column)
        if value.__class__ is not str or (value and not value.isspace() and value != NULL_LITERAL):
            return column, value
        if value == NULL_LITERAL:
            self.note("null-literal", column, value)
        elif self.focus_rules:
            self.note("empty-string", column, value)
        return column, None

    def text(self, name: str, *, required: bool = False, expected: str = "a value") -> str | None:
        column, value = self._get(name)
        if value is None:
            if required:
                raise CellError(column, None, "the value is empty", expected)
            return None
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, date):
            value = value.isoformat()
        elif not isinstance(value, str):
            value = str(value)
        if value in self.placeholders:
            if required:
                raise CellError(column, value, f"{show(value)} is a placeholder, not a value", expected)
            self.note("placeholder", column, value)
            return None
        return value

    def enum(self, name: str, allowed: tuple[str, ...]) -> str | None:
        """Text from an enumeration column, with its casing repaired; other values are left as written."""
        value = self.text(name)
        if value is None or value in allowed:
            return value
        for canonical in allowed:
            if canonical.casefold() == value.casefold():
                self.note("enum-case", self.columns.label(name), value)
                return canonical
        return value

    def decimal(self, name: str, *, required: bool = False) -> Decimal | None:
        column, value = self._get(name)
        if value is None:
            if required:
                raise CellError(column, None, "the value is empty", DECIMAL_EXPECTED)
            return None
        try:
            return parse_decimal(value)
        except ValueError:
            raise CellError(column, value, f"{show(value)} is not a number", DECIMAL_EXPECTED) from None

    def datetime(self, name: str, *, required: bool = False) -> datetime | None:
        column, value = self._get(name)
        if value is None:
            if required:
                raise CellError(column, None, "the value is empty", DATETIME_EXPECTED)
            return None
        try:
            moment, strict = parse_datetime(value)
        except ValueError:
            raise CellError(column, value, f"{show(value)} is not a date/time", DATETIME_EXPECTED) from None
        if not strict and self.focus_rules:
            self.note("datetime-format", column, value)
        return moment

    def next_day(self, name: str, moment: datetime) -> datetime:
        """The exclusive end of a period whose inclusive last day is ``moment`` (Azure writes end dates so)."""
        try:
            return moment + timedelta(days=1)
        except OverflowError:
            problem = f"{show(moment)} is too late"
            raise CellError(self.columns.label(name), moment, problem, DATETIME_EXPECTED) from None

    def json(self, name: str, *, expected: str) -> Any:
        """A JSON cell (text, or nested Parquet values as they are); CellError if the text is not JSON."""
        column, value = self._get(name)
        if not isinstance(value, str):
            return value
        try:
            return _with_dicts(loads(value))
        except ValueError:
            raise CellError(column, value, f"{show(value)} is not valid JSON", expected) from None

    def key_values(self, name: str) -> dict[str, Any] | None:
        """A Tags-like column as a flat dict; unreadable text is reported and kept in extras, not fatal."""
        column, value = self._get(name)
        if value is None:
            return None
        if isinstance(value, dict):
            pairs: Iterable[tuple[Any, Any]] = value.items()
        elif isinstance(value, list) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
            pairs = value  # a Parquet map column
        elif isinstance(value, str):
            parsed = self._parse_key_values(column, value)
            if parsed is None:
                self.note("key-value-unparseable", column, value)
                self.extras[f"x_Unparsed{column}"] = value
                return None
            pairs = parsed
        else:
            self.note("key-value-unparseable", column, value)
            return None
        return self.merge_pairs(column, pairs)

    def _parse_key_values(self, column: str, text: str) -> list[tuple[Any, Any]] | None:
        body = text.strip()
        if not body.startswith("{"):
            # Azure writes the object's members without the braces: "k": "v","k2": "v2"
            if self.focus_rules:
                self.note("key-value-braces", column, text)
            body = "{" + body + "}"
        try:
            parsed = loads(body)
        except ValueError:
            return None
        return parsed if isinstance(parsed, _Pairs) else None

    def merge_pairs(self, column: str, pairs: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
        """Key/value pairs as a dict with trimmed keys; on a clash the key written without spaces wins."""
        result: dict[str, Any] = {}
        seen: set[str] = set()
        for raw_key, raw_value in pairs:
            key = str(raw_key)
            if key in seen:
                self.note("key-value-format", column, key)
            seen.add(key)
            value = _plain(raw_value)
            if isinstance(value, dict | list):
                self.note("key-value-format", column, key)
            trimmed = key.strip()
            if trimmed != key:
                self.note("tag-key-whitespace", column, key)
                if trimmed in result:
                    continue
            result[trimmed] = value
        return result
