"""Reading cells: text to Decimal, UTC datetime and key-value dicts, with null and placeholder handling."""

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
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


# Text made of these characters only is a plain decimal exactly when Decimal() accepts it.
PLAIN_DECIMAL_CHARS = "0123456789.+-"


# Line items keep amounts as numeric(38, 18): 20 digits before the point, 18 after (more are rounded).
STORED_INTEGER_DIGITS = 20
_STORED_PLACES = Decimal(1).scaleb(-18)
_STORED_LIMIT = Decimal(10) ** STORED_INTEGER_DIGITS


def storable(number: Decimal) -> bool:
    """Whether the database keeps the number: below 10^20 once rounded to 18 decimal places."""
    if not number.is_finite() or number.adjusted() < STORED_INTEGER_DIGITS - 1:
        return True  # the usual case, decided by the exponent alone
    if number.adjusted() >= STORED_INTEGER_DIGITS:
        return False
    # 20 digits before the point: 99999999999999999999.9999999999999999995 rounds up to 10^20.
    rounded = number.quantize(_STORED_PLACES, rounding=ROUND_HALF_UP, context=Context(prec=40))
    return rounded.copy_abs() < _STORED_LIMIT  # abs() would round to the default 28 digits


def parse_decimal(value: object) -> Decimal:
    """A Decimal from text (or a Parquet number), never through float arithmetic; ValueError if not a number."""
    if isinstance(value, str):
        if value and not value.strip(PLAIN_DECIMAL_CHARS):  # the common case, without the regular expression
            try:
                return Decimal(value)
            except InvalidOperation:
                raise ValueError(value) from None
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


class _Pairs(list):
    """A decoded JSON object as its key/value pairs, so duplicate keys can be reported."""


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant, object_pairs_hook=_Pairs)


def loads(text: str) -> Any:
    """JSON with numbers as Decimal (no float) and duplicate keys kept as pairs for the caller to judge."""
    try:
        if isinstance(text, str) and not text.startswith("\ufeff"):
            return _DECODER.decode(text)  # json.loads would build a new decoder for every call
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant, object_pairs_hook=_Pairs)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


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
        self.index = {name: position for position, name in enumerate(self.header)}  # a record's value positions
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

    One instance is reused for every record of a file; ``load`` points it at the next record (its values
    in header order). Amounts, date/times and key-value cells repeat from row to row, so their parsed forms
    are kept for the file, a bounded number of them; repeated values share one Decimal or datetime.
    """

    # Parsed texts kept: amounts and date/times, key-value texts (up to CACHED_TEXT characters long).
    # A cache that is full starts over, so memory stays within a few megabytes however long the file.
    CACHED = 8192
    CACHED_KEY_VALUES = 4096
    CACHED_TEXT = 1024

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
        self.record: Sequence[Any] = ()
        self._slots: dict[str, tuple[str, int | None]] = {}
        # Text that text() returns as it is only when it is none of these (nor whitespace).
        self.special = placeholders | {NULL_LITERAL, ""}
        # Parsed texts: decimal text -> value, date/time text -> (UTC moment, written in the strict FOCUS
        # form), key-value text -> (dict, notes it gives as (rule, value)).
        self.decimals: dict[str, Decimal] = {}
        self.datetimes: dict[str, tuple[datetime, bool]] = {}
        self.key_value_texts: dict[str, tuple[dict[str, Any], tuple[tuple[str, str], ...]]] = {}

    def load(self, row: int, record: Sequence[Any]) -> None:
        self.row = row
        self.record = record
        self.extras = {}
        self.report.start_row(row)

    def note(self, rule: str, column: str, value: object = None) -> None:
        self.report.note(rule, row=self.row, column=column, value=value)

    def slot(self, name: str) -> tuple[str, int | None]:
        """The column's header spelling (or the expected one) and its position in a record, None if absent."""
        try:
            return self._slots[name]
        except KeyError:
            column = self.columns.find(name)
            slot = (self.columns.label(name), None) if column is None else (column, self.columns.index[column])
            self._slots[name] = slot
            return slot

    def _get(self, name: str) -> tuple[str, Any]:
        """The column's header spelling and its value, with written-out nulls turned into None."""
        column, position = self._slots.get(name) or self.slot(name)
        if position is None:
            return column, None
        return column, self._value(column, self.record[position])

    def _value(self, column: str, value: Any) -> Any:
        """A cell's value, with written-out nulls noted and turned into None."""
        if value.__class__ is not str or (value and not value.isspace() and value != NULL_LITERAL):
            return value
        if value == NULL_LITERAL:
            self.note("null-literal", column, value)
        elif self.focus_rules:
            self.note("empty-string", column, value)
        return None

    def text(self, name: str, *, required: bool = False, expected: str = "a value") -> str | None:
        column, position = self._slots.get(name) or self.slot(name)
        if position is None:
            value = None
        else:
            value = self.record[position]
            if value.__class__ is str and value not in self.special and not value.isspace():
                return value  # the common case: written text that needs no note
            value = self._value(column, value)
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
        column, position = self._slots.get(name) or self.slot(name)
        if position is None:
            value = None
        else:
            value = self.record[position]
            if value.__class__ is str:
                number = self.decimals.get(value)
                if number is not None:  # text read before: a plain decimal, so no note is due
                    return number
                number = self.plain_decimal(value)
                if number is not None:
                    return number
            value = self._value(column, value)
        if value is None:
            if required:
                raise CellError(column, None, "the value is empty", DECIMAL_EXPECTED)
            return None
        try:
            number = parse_decimal(value)
        except ValueError:
            raise CellError(column, value, f"{show(value)} is not a number", DECIMAL_EXPECTED) from None
        if not storable(number):
            raise CellError(
                column,
                value,
                f"{show(value)} is too large: amounts and quantities are kept with at most "
                f"{STORED_INTEGER_DIGITS} digits before the decimal point",
                DECIMAL_EXPECTED,
            )
        return number

    def plain_decimal(self, text: str) -> Decimal | None:
        """The value of text written as a plain decimal (kept for the next time), else None."""
        if not text or text.strip(PLAIN_DECIMAL_CHARS):
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:
            return None
        if not storable(number):
            return None
        if len(self.decimals) >= self.CACHED:
            self.decimals.clear()
        self.decimals[text] = number
        return number

    def datetime(self, name: str, *, required: bool = False) -> datetime | None:
        column, position = self._slots.get(name) or self.slot(name)
        if position is not None:
            value = self.record[position]
            parsed = self.datetimes.get(value) if value.__class__ is str else None
            if parsed is not None:  # text read before: never null, so no null note is due
                if not parsed[1] and self.focus_rules:
                    self.note("datetime-format", column, value)
                return parsed[0]
        column, value = self._get(name)
        if value is None:
            if required:
                raise CellError(column, None, "the value is empty", DATETIME_EXPECTED)
            return None
        try:
            parsed = parse_datetime(value)
        except ValueError:
            raise CellError(column, value, f"{show(value)} is not a date/time", DATETIME_EXPECTED) from None
        if value.__class__ is str:
            if len(self.datetimes) >= self.CACHED:
                self.datetimes.clear()
            self.datetimes[value] = parsed
        moment, strict = parsed
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
        if value.__class__ is str:
            known = self.key_value_texts.get(value)
            if known is not None:
                result, notes = known
                for rule, noted in notes:
                    self.note(rule, column, noted)
                return dict(result)  # every row gets its own dict
        if isinstance(value, dict):
            pairs: Iterable[tuple[Any, Any]] = value.items()
        elif isinstance(value, list) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
            pairs = value  # a Parquet map column
        elif isinstance(value, str):
            notes: list[tuple[str, str]] = []
            parsed = self._parse_key_values(value, notes)
            if parsed is None:
                self._note_all(column, notes)
                self.note("key-value-unparseable", column, value)
                self.extras[f"x_Unparsed{column}"] = value
                return None
            result = self._merge(parsed, notes)
            self._note_all(column, notes)
            # Only flat results are kept: the copies handed out then share nothing that can change.
            if len(value) <= self.CACHED_TEXT and not _has_rule(notes, "key-value-format"):
                if len(self.key_value_texts) >= self.CACHED_KEY_VALUES:
                    self.key_value_texts.clear()
                self.key_value_texts[value] = (dict(result), tuple(notes))
            return result
        else:
            self.note("key-value-unparseable", column, value)
            return None
        return self.merge_pairs(column, pairs)

    def _parse_key_values(self, text: str, notes: list[tuple[str, str]]) -> list[tuple[Any, Any]] | None:
        body = text.strip()
        if not body.startswith("{"):
            # Azure writes the object's members without the braces: "k": "v","k2": "v2"
            if self.focus_rules:
                notes.append(("key-value-braces", text))
            body = "{" + body + "}"
        try:
            parsed = loads(body)
        except ValueError:
            return None
        return parsed if isinstance(parsed, _Pairs) else None

    def _note_all(self, column: str, notes: list[tuple[str, str]]) -> None:
        for rule, value in notes:
            self.note(rule, column, value)

    def merge_pairs(self, column: str, pairs: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
        """Key/value pairs as a dict with trimmed keys; on a clash the key written without spaces wins."""
        notes: list[tuple[str, str]] = []
        result = self._merge(pairs, notes)
        self._note_all(column, notes)
        return result

    @staticmethod
    def _merge(pairs: Iterable[tuple[Any, Any]], notes: list[tuple[str, str]]) -> dict[str, Any]:
        """merge_pairs, with the notes due listed as (rule, key) instead of recorded."""
        result: dict[str, Any] = {}
        seen: set[str] = set()
        for raw_key, raw_value in pairs:
            key = raw_key if raw_key.__class__ is str else str(raw_key)
            if key in seen:
                notes.append(("key-value-format", key))
            seen.add(key)
            value = raw_value if raw_value.__class__ is str else _plain(raw_value)
            if isinstance(value, dict | list):
                notes.append(("key-value-format", key))
            trimmed = key.strip()
            if trimmed != key:
                notes.append(("tag-key-whitespace", key))
                if trimmed in result:
                    continue
            result[trimmed] = value
        return result


def _has_rule(notes: list[tuple[str, str]], rule: str) -> bool:
    """Whether the notes include ``rule``; a nested value gives a key-value-format note."""
    return any(noted == rule for noted, _ in notes) if notes else False
