"""PostgreSQL bulk path for native FOCUS CSV files (plain or gzip): the file goes in by COPY, the rest is SQL.

The file's bytes are streamed unchanged into a work table of text columns (one per header column, plus
the file's row number); reading, normalising and checking the cells and the conformance counts then run
as a few set-based statements, on parts of that table at the same time (``BILLING_IMPORT_PARTS`` database
processes), and the line items go in by one statement of the import's own transaction. The rules are the portable
reader's (``formats``): this module recognises the common shapes of each cell exactly as the reader reads
them, and hands anything else back. The caller runs it inside a savepoint and, on ``Declined`` or any
database error (a value PostgreSQL cannot cast, a CSV record it cannot split), rolls back and imports the
file with the portable reader, so an invalid file is reported with the reader's own messages and every
file gives the same rows, totals and findings whichever way it went in.

Conformance examples and the order of findings come from running the reader itself on the few rows
that hold each rule's first findings; the counts come from SQL.
"""

import contextlib
import csv
import gzip
import json
import logging
import os
import re
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from psycopg2.extras import execute_values

from . import partitions
from .formats import FOCUS_COLUMNS, BillingFileReader
from .formats.base import (
    DATETIME_COLUMNS,
    DECIMAL_COLUMNS,
    ENUMERATIONS,
    KEY_VALUE_COLUMNS,
    MANDATORY_COLUMNS,
    CellError,
)
from .formats.conformance import RULES, ConformanceChecker, ConformanceReport, Example
from .formats.focus import FocusMapper
from .formats.sources import GZIP_MAGIC, CsvSource
from .formats.values import Cells, Columns, show

logger = logging.getLogger(__name__)

SCRATCH_PREFIX = "billing_scratch_"
_END_OF_DATA = re.compile(rb"\n\\\.(?:\r|\n)")
COPY_CHUNK = 1 << 20
FIELD_LIMIT = csv.field_size_limit()
# Progress (the share shown to users) after each step: COPY takes the file up to COPY_SHARE, then SQL.
COPY_SHARE = 0.4
KV_BATCH = 2_000
PREFIX_ROWS = 20_000  # rows read first when looking for the examples
EXAMPLES = ConformanceReport.EXAMPLES
# Whitespace as str.isspace() sees it.
_WS = r"^[\t\n\v\f\r\x1c-\x1f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$"
_ENOTATION = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]{1,3}$"
_ISO_UTC = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?)?Z?$"
_KV_RULES = ("key-value-format", "key-value-braces", "key-value-unparseable", "tag-key-whitespace")
# FOCUS decimal columns the line-item table has columns for; others would go to ``extra`` as Python text.
_STORED_DECIMALS = frozenset(
    {
        "BilledCost",
        "EffectiveCost",
        "ListCost",
        "ListUnitPrice",
        "ContractedCost",
        "ContractedUnitPrice",
        "ConsumedQuantity",
        "PricingQuantity",
    }
)


class Declined(Exception):
    """The file holds something this path does not read exactly as the portable reader: use that instead."""


@dataclass
class FastResult:
    """What the importer records of a file that went in by COPY (the reader's attributes, for the other path)."""

    rows: int
    billed: Decimal
    effective: Decimal
    periods: set[tuple[datetime, datetime]]
    currency: str
    warnings: list[dict[str, Any]]
    allocated: bool = False  # the rules, environment and location tags were applied as the rows were written
    groups: dict[datetime, list[dict]] | None = None  # the rollup's sums, made as the rows were read


def applies(reader: BillingFileReader) -> bool:
    """Whether this path can take the file: PostgreSQL, native FOCUS, CSV (plain or gzip), supported columns."""
    if connection.vendor != "postgresql" or reader.format != FocusMapper.key:
        return False
    if not isinstance(reader._source, CsvSource):
        return False
    return not any(c in DECIMAL_COLUMNS and c not in _STORED_DECIMALS for c in reader.columns)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _in(values: Iterable[str]) -> str:
    return "(" + ", ".join(_lit(v) for v in values) + ")"


class _Progress:
    """Bytes and lines every COPY stream has read; the importer's own thread reports them."""

    def __init__(self, size: int | None, report: Callable[[int, float | None], None]) -> None:
        self.size = size
        self.bytes = 0
        self.lines = 0
        self._report = report
        self._lock = threading.Lock()

    def add(self, nbytes: int, lines: int) -> None:
        with self._lock:
            self.bytes += nbytes
            self.lines += lines

    @property
    def rows(self) -> int:
        """Records read so far, about: lines less the header (a quoted line break counts once more)."""
        return max(self.lines - 1, 0)

    def publish(self) -> None:
        fraction = min(self.bytes / self.size, 1.0) * COPY_SHARE if self.size else None
        self._report(self.rows, fraction)


class _Stream:
    """Bytes of the file for one COPY, from where ``raw`` stands to ``end`` (or the end; gunzipped on the fly)."""

    def __init__(self, raw: IO[bytes], progress: _Progress, end: int | None = None) -> None:
        self._raw = raw
        start = raw.tell()
        head = raw.read(2)
        raw.seek(start)
        compressed = start == 0 and end is None and head == GZIP_MAGIC
        self._layer = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        self._left = None if end is None else end - start
        self._progress = progress
        self._tail = b"\n"  # the last bytes read (a part starts at a line's start)

    def read(self, n: int = -1) -> bytes:
        size = COPY_CHUNK if self._left is None else min(COPY_CHUNK, self._left)
        data = b""
        if size > 0:
            before = self._raw.tell()
            data = self._layer.read(size)
            if self._left is not None:
                self._left -= len(data)
            self._progress.add(self._raw.tell() - before, data.count(b"\n"))
        # COPY takes a line holding only \. as the end of the data and would drop every record after it in
        # silence; the reader reports such a line as a short record.
        seen = self._tail + data
        if _END_OF_DATA.search(seen) or (not data and seen.endswith(b"\n\\.")):
            raise Declined("a line holding only \\. (COPY's end-of-data marker)")
        self._tail = seen[-3:]
        return data

    def close(self) -> None:
        if self._layer is not self._raw:
            self._layer.close()


def _cuts(path: str, parts: int) -> list[int]:
    """Byte offsets cutting a plain CSV file into about equal parts, each cut just after a record's end.

    A record ends at a line feed with an even number of quote characters before it in the file: COPY
    itself splits records that way (a quote opens or closes a quoted field wherever it stands, a doubled
    one does both), so the parts hold exactly the records one COPY of the whole file would. The first part
    keeps the header.
    """
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as fh:
        for k in range(1, parts):
            target = size * k // parts
            if target <= cuts[-1]:
                continue
            fh.seek(cuts[-1])
            pos, quotes = cuts[-1], 0
            while pos < target:  # the quotes up to the target
                chunk = fh.read(min(COPY_CHUNK, target - pos))
                if not chunk:
                    break
                quotes += chunk.count(b'"')
                pos += len(chunk)
            cut = None
            while cut is None:  # then the first line feed outside quotes
                chunk = fh.read(COPY_CHUNK)
                if not chunk:
                    break
                at = 0
                while True:
                    feed = chunk.find(b"\n", at)
                    if feed < 0:
                        quotes += chunk.count(b'"', at)
                        break
                    quotes += chunk.count(b'"', at, feed)
                    if quotes % 2 == 0:
                        cut = pos + feed + 1
                        break
                    at = feed + 1
                pos += len(chunk)
            if cut is None or cut >= size:
                break
            cuts.append(cut)
    return [*cuts, size]


class _Plan:
    """SQL for each header column: its normalised value and the findings it gives.

    Three nested queries over the staged text (``c<i>``), each computed once per row: how a nullable cell
    is null (``k<i>``), the normalised values (``v<i>``), then the findings and the checks that send the
    file back, as conditions on those. The typed table keeps the values, the kinds and the flags of the
    findings that are not read from the kinds.
    """

    def __init__(self, header: list[str], prefix: str) -> None:
        self.header = header
        self.prefix = prefix
        self.width = len(header)
        self.placeholders = sorted(FocusMapper.placeholders)
        self.special = _in(["NULL", "", *self.placeholders])
        self.position = {column: i for i, column in enumerate(header)}
        self.kinds: list[str] = []  # "<expression> AS k<i>": how a nullable cell is null (see _kind)
        self.inner: list[str] = []  # "<expression> AS v<i>" over the staged text and the kinds
        self.expr: dict[int, str] = {}  # position -> the expression of v<i>
        self.bad: list[str] = []  # conditions (on x.) that send the file back to the portable reader
        # (rule, column, condition on x., whether it counts notes rather than rows, whether the typed table
        # keeps its flag: the null notes are read from the kinds instead)
        self.notes: list[tuple[str, str, str, bool, bool]] = []
        self.kv: dict[int, str] = {}  # position of a key-value column -> its lookup table
        self.extras: list[tuple[int, str]] = []  # non-FOCUS columns
        self.decimals: set[str] = set()
        # Python's csv module refuses a field longer than its limit; COPY takes it.
        self.bad.append(
            "("
            + " OR ".join(f"octet_length(x.c{i}) > {FIELD_LIMIT}" for i in range(self.width))
            + f") AND greatest({', '.join(f'length(x.c{i})' for i in range(self.width))}) > {FIELD_LIMIT}"
        )
        for i, column in enumerate(header):
            c = f"s.c{i}"
            if column not in FOCUS_COLUMNS:
                self.extras.append((i, column))
                self._text(i, c, column, nullable=True)
            elif column in DECIMAL_COLUMNS:
                self._decimal(i, c, column)
            elif column in DATETIME_COLUMNS:
                self._datetime(i, c, column)
            elif column in KEY_VALUE_COLUMNS:
                self._key_values(i, column)
            elif column in ENUMERATIONS:
                self._enum(i, c, column)
            else:
                self._text(i, c, column, nullable=column not in FocusMapper.required)

    def v(self, column: str) -> str:
        """The normalised value of a FOCUS column in the typed query; NULL when the file lacks it."""
        i = self.position.get(column)
        return "NULL" if i is None else f"x.v{i}"

    def _blank(self, c: str) -> str:
        """Whether a cell is whitespace only (as str.isspace()); the regular expression runs on few cells."""
        return f"({c} COLLATE \"C\" < '!' OR {c} COLLATE \"C\" >= E'\\u0080') AND {c} <> '' AND {c} ~ {_lit(_WS)}"

    def _kind(self, i: int, column: str, *, placeholders: bool) -> None:
        """k<i>: 0 a value, 1 the NULL literal, 2 empty or whitespace only, 3 a placeholder (text columns)."""
        c = f"s.c{i}"
        if placeholders:
            special = f"CASE WHEN {c} IN {self.special} THEN (CASE {c} WHEN 'NULL' THEN 1 WHEN '' THEN 2 ELSE 3 END)"
        else:
            special = f"CASE WHEN {c} = 'NULL' THEN 1 WHEN {c} = '' THEN 2"
        self.kinds.append(f"({special} WHEN {self._blank(c)} THEN 2 ELSE 0 END) AS k{i}")
        self.notes.append(("null-literal", column, f"x.k{i} = 1", False, False))
        self.notes.append(("empty-string", column, f"x.k{i} = 2", False, False))
        if placeholders:
            self.notes.append(("placeholder", column, f"x.k{i} = 3", False, False))

    def _text(self, i: int, c: str, column: str, *, nullable: bool) -> None:
        if not nullable:  # BillingCurrency: an empty or placeholder value is an error
            self.bad.append(f"(x.c{i} IN {self.special} OR (CASE WHEN {self._blank(f'x.c{i}')} THEN true END))")
            self._out(i, c)
            return
        self._kind(i, column, placeholders=True)
        self._out(i, f"(CASE WHEN s.k{i} = 0 THEN {c} END)")

    def _enum(self, i: int, c: str, column: str) -> None:
        allowed = ENUMERATIONS[column]
        self._kind(i, column, placeholders=True)
        x = f"x.c{i}"
        # A value that is not ASCII might still fold to an allowed one (str.casefold): the reader decides.
        self.bad.append(f"({x} NOT IN {_in(allowed)} AND {x} COLLATE \"C\" >= E'\\u0080')")
        lowered = _in(v.lower() for v in allowed)
        self.notes.append(
            ("enum-case", column, f"({x} NOT IN {_in(allowed)} AND lower({x}) IN {lowered})", False, True)
        )
        recased = " ".join(f"WHEN lower({c}) = {_lit(v.lower())} THEN {_lit(v)}" for v in allowed)
        self._out(
            i,
            f"(CASE WHEN {c} IN {_in(allowed)} THEN {c} WHEN s.k{i} <> 0 THEN NULL {recased} ELSE {c} END)",
        )

    def _decimal(self, i: int, c: str, column: str) -> None:
        # PostgreSQL reads a little more than the reader does (NaN, Infinity, long exponents, blanks):
        # such cells go back to the reader; a cell PostgreSQL cannot read at all fails the statement.
        self.decimals.add(column)
        x = f"x.c{i}"
        self.bad.append(
            f"(x.v{i} IN ('NaN', 'Infinity', '-Infinity') OR (CASE WHEN strpos({x}, 'e') > 0 OR strpos({x}, 'E') > 0 "
            f"THEN {x} !~ {_lit(_ENOTATION)} END))"
        )
        if column in FocusMapper.required:  # empty, NULL or blank: an error
            self.bad.append(f"{x} IN ('NULL', '')")
            self._out(i, f"{c}::numeric")
        else:
            self._kind(i, column, placeholders=False)
            self._out(i, f"(CASE WHEN s.k{i} = 0 THEN {c}::numeric END)")

    def _datetime(self, i: int, c: str, column: str) -> None:
        x = f"x.c{i}"
        strict = f"{x} LIKE '____-__-__T__:__:__Z'"
        # The two common shapes are checked without a regular expression; the other forms of ISO 8601
        # without an offset that the reader takes as UTC with a note (date only, no seconds, up to six
        # decimals of a second: PostgreSQL would round a seventh) with one.
        common = (
            f"(({strict} AND translate({x}, '0123456789', '') = '--T::Z') OR ({x} LIKE '____-__-__ __:__:__' "
            f"AND translate({x}, '0123456789', '') = '-- ::')) AND substr({x}, 12, 2) < '24' "
            f"AND substr({x}, 15, 2) < '60' AND substr({x}, 18, 2) < '60'"
        )
        other = f"{x} ~ {_lit(_ISO_UTC)}"
        self.bad.append(f"(NOT coalesce(CASE WHEN {common} THEN true ELSE {other} END, false) OR {x} LIKE '0000%')")
        self.notes.append(("datetime-format", column, f"NOT ({strict})", False, True))
        # Only the shapes above get here: none carries a zone other than Z, so all are UTC.
        self._out(i, f"(rtrim({c}, 'Z')::timestamp AT TIME ZONE 'UTC')")

    def _key_values(self, i: int, column: str) -> None:
        self.kv[i] = f"{self.prefix}kv{i}"
        self._kind(i, column, placeholders=False)
        for rule in _KV_RULES:
            field = rule.replace("-", "_")
            self.notes.append((rule, column, f"x.kv{i}_{field}", True, True))
        self._out(i, f"kv{i}.value")
        self.inner.append(f"kv{i}.unparsed AS kv{i}_unparsed")
        self.inner.append(f"CASE WHEN kv{i}.unparsed THEN s.c{i} END AS kv{i}_raw")
        self.inner.extend(f"kv{i}.{rule.replace('-', '_')} AS kv{i}_{rule.replace('-', '_')}" for rule in _KV_RULES)

    def _out(self, i: int, expr: str) -> None:
        self.expr[i] = expr
        self.inner.append(f"{expr} AS v{i}")

    def joins(self) -> str:
        return "".join(f" LEFT JOIN {table} kv{i} ON kv{i}.raw = s.c{i}" for i, table in self.kv.items())

    def checks(self, bad_services: str) -> None:
        """The ConformanceChecker's rules, as conditions on the normalised values."""
        v = self.v
        for column in MANDATORY_COLUMNS:
            self.notes.append(("mandatory-null", column, f"{v(column)} IS NULL", False))
        for column, allowed in ENUMERATIONS.items():
            if column in self.position:
                self.notes.append(
                    ("enum-value", column, f"({v(column)} IS NOT NULL AND {v(column)} NOT IN {_in(allowed)})", False)
                )
        not_correction = f"{v('ChargeClass')} IS DISTINCT FROM 'Correction'"
        quantity = v("PricingQuantity")
        for rule, total, price in (
            ("list-cost", "ListCost", "ListUnitPrice"),
            ("contracted-cost", "ContractedCost", "ContractedUnitPrice"),
        ):
            if {total, price, "PricingQuantity"} <= self.decimals:
                t, p = v(total), v(price)
                # conformance._product_differs, with both sides doubled instead of halving one.
                gap = f"abs({t} - {p} * {quantity})"
                scale = f"abs({p}) * {self._ulp('PricingQuantity')} + abs({quantity}) * {self._ulp(price)}"
                differs = f"(CASE WHEN {gap} <= 0.000001 THEN false ELSE 2 * {gap} > {scale} + {self._ulp(total)} END)"
                present = f"{quantity} IS NOT NULL AND {t} IS NOT NULL AND {p} IS NOT NULL"
                self.notes.append((rule, total, f"({present} AND {not_correction} AND {differs})", False))
        category = v("ChargeCategory")
        billed = v("BilledCost")
        for column in ("EffectiveCost", "ListCost", "ContractedCost"):
            if column in self.decimals:
                a = v(column)
                differs = (
                    f"(CASE WHEN abs({a} - {billed}) <= 0.000001 THEN false ELSE 2 * abs({a} - {billed}) > "
                    f"{self._ulp(column)} + {self._ulp('BilledCost')} END)"
                )
                self.notes.append(
                    ("credit-costs", column, f"({category} = 'Credit' AND {a} IS NOT NULL AND {differs})", False)
                )
        unit = v("PricingUnit")
        self.notes.append(
            (
                "tax-pricing-quantity",
                "PricingQuantity",
                f"({category} = 'Tax' AND ({quantity} IS NOT NULL OR {unit} IS NOT NULL))",
                False,
            )
        )
        self.notes.append(
            (
                "pricing-quantity-missing",
                "PricingQuantity",
                f"({category} IN ('Usage', 'Purchase') AND ({quantity} IS NULL OR {unit} IS NULL) "
                f"AND {not_correction})",
                False,
            )
        )
        self.notes.append(
            (
                "consumed-quantity",
                "ConsumedQuantity",
                f"({v('ConsumedQuantity')} IS NOT NULL AND {category} IS DISTINCT FROM 'Usage')",
                False,
            )
        )
        self.notes.append(
            ("currency-code", "BillingCurrency", f"{v('BillingCurrency')} COLLATE \"C\" !~ '^[A-Z]{{3}}$'", False)
        )
        service, service_category = v("ServiceName"), v("ServiceCategory")
        self.notes.append(
            (
                "service-category",
                "ServiceCategory",
                f"({service}, {service_category}) IN (SELECT service, category FROM {bad_services})",
                False,
                False,  # read from the values once the file's first category of each service is known
            )
        )
        cps, cpe = v("ChargePeriodStart"), v("ChargePeriodEnd")
        bps, bpe = v("BillingPeriodStart"), v("BillingPeriodEnd")
        self.notes.append(("period-order", "ChargePeriodStart", f"{cps} >= {cpe}", False))
        self.notes.append(("period-order", "BillingPeriodStart", f"{bps} >= {bpe}", False))
        self.notes.append(
            ("charge-outside-billing-period", "ChargePeriodStart", f"({cps} < {bps} OR {cpe} > {bpe})", False)
        )
        # The checker's findings are flags of the typed table.
        self.notes = [note if len(note) == 5 else (*note, True) for note in self.notes]

    def _ulp(self, column: str) -> str:
        """One unit in the last place the staged text was written with (Decimal's exponent), as numeric."""
        c = f"x.c{self.position[column]}"
        exponent = (
            f"(coalesce(substring({c} from '[eE]([+-]?[0-9]+)$')::int, 0) "
            f"- coalesce(length(substring({c} from '\\.([0-9]*)')), 0))"
        )
        return f"('1e' || {exponent})::numeric"


def _kv_entry(cells: Cells, text: str) -> tuple[str | None, bool, dict[str, int]]:
    """What the reader makes of a key-value text: its JSON, whether it was unparseable, notes per rule."""
    notes: list[tuple[str, str]] = []
    parsed = cells._parse_key_values(text, notes)
    if parsed is None:
        notes.append(("key-value-unparseable", text))
        value, unparsed = None, True
    else:
        value, unparsed = json.dumps(cells._merge(parsed, notes)), False
    counts = dict.fromkeys(_KV_RULES, 0)
    for rule, _ in notes:
        counts[rule] += 1
    return value, unparsed, counts


class _RecordingReport(ConformanceReport):
    """Keeps every row's notes in order instead of counting them."""

    def __init__(self) -> None:
        super().__init__()
        self.stream: list[tuple[int, str, str | None, object]] = []

    def _end_row(self, *, partial: bool = False) -> None:
        for (rule, column), value in zip(self._keys, self._values, strict=True):
            self.stream.append((self._row, rule, column, value))
        self._keys.clear()
        self._values.clear()


class _Scratch:
    """The work tables of one import and the connections that write and read them.

    The tables are unlogged and committed as soon as they are written, on connections of their own, so that
    several database processes can read and check parts of the file at the same time (a temporary table is
    seen by its own session only). Users never see them: the line items still go in by the import's own
    transaction. ``scratch_drop`` removes them once that transaction has ended; the tables of an import
    that was killed are removed by the next import.
    """

    def __init__(self, import_id: int, parts: int) -> None:
        # The import's id, then a token of this attempt: an attempt never meets the tables of another.
        self.prefix = f"{SCRATCH_PREFIX}{import_id}_{secrets.token_hex(3)}_"
        self.import_id = import_id
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        self.conns: list[Any] = []
        try:
            for _ in range(parts):
                conn = connection.Database.connect(**params)
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("SET work_mem = '64MB'")
                    cur.execute("SET jit = off")
                self.conns.append(conn)
        except BaseException:
            self.close()
            raise

    def table(self, suffix: str) -> str:
        return self.prefix + suffix

    def drop_stale(self) -> None:
        """Drop the work tables left by killed imports: those of imports no longer running, and this one's."""
        from .models import BillingImport

        with self.conns[0].cursor() as cur:
            cur.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE %s", [SCRATCH_PREFIX.replace("_", r"\_") + "%"]
            )
            tables = [name for (name,) in cur.fetchall()]
            owners = {name: _scratch_owner(name) for name in tables}
            running = set(
                BillingImport.objects.filter(
                    pk__in={o for o in owners.values() if o is not None}, status=BillingImport.Status.RUNNING
                ).values_list("pk", flat=True)
            )
            stale = [n for n, o in owners.items() if o is not None and (o == self.import_id or o not in running)]
            # A table some transaction still holds (an import's own drop, not yet committed) is left for later.
            cur.execute("SET lock_timeout = '200ms'")
            for name in stale:
                try:
                    cur.execute(f'DROP TABLE IF EXISTS "{name}"')
                except connection.Database.Error as exc:
                    logger.info("billing work table %s not dropped yet (%s)", name, str(exc).strip()[:100])
            cur.execute("RESET lock_timeout")

    def cancel(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(connection.Database.Error):
                conn.cancel()

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(connection.Database.Error):
                conn.close()
        self.conns = []


def drop_stale(import_id: int) -> None:
    """Drop the work tables that killed imports left (the SQL path's), on a connection of its own."""
    if connection.vendor != "postgresql":
        return
    scratch = _Scratch(import_id, 1)
    try:
        scratch.drop_stale()
    finally:
        scratch.close()


def _scratch_owner(table: str) -> int | None:
    number = table[len(SCRATCH_PREFIX) :].split("_", 1)[0]
    return int(number) if number.isdigit() else None


def scratch_drop(import_id: int) -> None:
    """Drop an import's work tables, on the default connection, once the import's transaction has ended."""
    if connection.vendor != "postgresql":
        return
    prefix = f"{SCRATCH_PREFIX}{import_id}_"
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE %s", [prefix.replace("_", r"\_") + "%"]
            )
            tables = [name for (name,) in cursor.fetchall()]
            if tables:
                cursor.execute("SET LOCAL lock_timeout = '5s'")  # never wait on a session that holds one
                cursor.execute("DROP TABLE IF EXISTS " + ", ".join(f'"{n}"' for n in tables))
                cursor.execute("SET LOCAL lock_timeout = DEFAULT")
    except DatabaseError as exc:  # the next import drops them
        logger.warning("billing import %s: work tables not dropped (%s)", import_id, str(exc).strip()[:200])


def _combine(results: list[tuple], minimums: set[int]) -> list[Any]:
    """The counts row of the whole file from those of its parts: positions 0-2 are bool_or, min and max,
    those in ``minimums`` are min(rn), the rest are sums and counts (NULL where no row counted)."""
    combined: list[Any] = []
    for position, values in enumerate(zip(*results, strict=True)):
        present = [v for v in values if v is not None]
        if not present:
            combined.append(None)
        elif position == 0:
            combined.append(any(present))
        elif position == 2:
            combined.append(max(present))
        elif position == 1 or position in minimums:
            combined.append(min(present))
        else:
            combined.append(sum(present))
    return combined


def run(
    *,
    billing_import,
    reader: BillingFileReader,
    raw: IO[bytes],
    progress: Callable[[int, float | None], None],
) -> FastResult:
    header = list(reader.columns)
    base_report = reader.report
    reader.close()
    scratch = _Scratch(billing_import.pk, max(1, settings.BILLING_IMPORT_PARTS))
    try:
        return _run(billing_import, header, base_report, raw, progress, scratch)
    except BaseException:
        scratch.cancel()
        raise
    finally:
        scratch.close()


@dataclass
class _Part:
    """Rows of the file checked by one database process: a stage table (or a block range of it), whose row
    numbers start after ``offset`` rows of the file."""

    stage: str
    typed: str
    offset: int = 0
    blocks: tuple[int, int | None] | None = None

    def where(self) -> str:
        if self.blocks is None:
            return ""
        low, high = self.blocks
        where = f" WHERE s.ctid >= '({low},0)'::tid"
        return where + (f" AND s.ctid < '({high},0)'::tid" if high is not None else "")


def _together(
    scratch: _Scratch,
    jobs: list[Callable[[Any], Any]],
    tick: Callable[[], None] | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> list:
    """Run each job on its own work connection at once (and ``meanwhile`` in this thread, on the default
    connection); the first error cancels the others and is raised."""
    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="billing-import") as pool:
        futures = [pool.submit(job, scratch.conns[k]) for k, job in enumerate(jobs)]
        try:
            if meanwhile:
                meanwhile()
            while True:
                done, pending = wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
                if tick:
                    tick()
                if not pending or any(f.exception() for f in done):
                    break
            return [f.result() for f in futures]
        except BaseException:
            scratch.cancel()
            raise


def _run(billing_import, header, base_report, raw, progress, scratch: _Scratch) -> FastResult:
    plan = _Plan(header, prefix=scratch.prefix)
    names = [f"c{i}" for i in range(plan.width)]
    count = len(scratch.conns)
    services_table = scratch.table("services")
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.monotonic()
        timings[step] = now - clock
        clock = now

    scratch.drop_stale()
    tracker = _Progress(billing_import.size, progress)
    raw.seek(0)
    compressed = raw.read(2) == GZIP_MAGIC
    # A plain file is cut at record ends and each part goes in by its own COPY at the same time; a gzip
    # stream can only be read from its start: one COPY, and the parts are block ranges of its table.
    cuts = [0, None] if compressed or count == 1 else _cuts(billing_import.stored_path, count)
    stages = [scratch.table(f"stage{k}") for k in range(len(cuts) - 1)]

    def copy(k: int) -> Callable[[Any], int]:
        def job(conn) -> int:
            with conn.cursor() as cur:
                cur.execute(
                    f"CREATE UNLOGGED TABLE {stages[k]} (rn bigint GENERATED ALWAYS AS IDENTITY, "
                    + ", ".join(f"{n} text" for n in names)
                    + ")"
                )
                with open(billing_import.stored_path, "rb") if k else contextlib.nullcontext(raw) as fh:
                    fh.seek(cuts[k])
                    stream = _Stream(fh, tracker, cuts[k + 1])
                    try:
                        cur.copy_expert(
                            f"COPY {stages[k]} ({', '.join(names)}) FROM STDIN WITH (FORMAT csv, "
                            f"HEADER {'false' if k else 'true'}, FORCE_NOT_NULL ({', '.join(names)}))",
                            stream,
                            size=COPY_CHUNK,
                        )
                    finally:
                        stream.close()
                return cur.rowcount

        return job

    copied = _together(scratch, [copy(k) for k in range(len(stages))], tick=tracker.publish)
    tracker.publish()
    if len(stages) > 1:
        offsets = [sum(copied[:k]) for k in range(len(stages))]
        parts = [_Part(stages[k], scratch.table(f"typed{k}"), offsets[k]) for k in range(len(stages))]
    else:
        with scratch.conns[0].cursor() as cur:
            cur.execute(f"SELECT pg_relation_size('{stages[0]}') / current_setting('block_size')::int")
            blocks = cur.fetchone()[0]
        bounds = [blocks * k // count for k in range(count)] + [None]
        parts = [_Part(stages[0], scratch.table(f"typed{k}"), blocks=(bounds[k], bounds[k + 1])) for k in range(count)]
    all_stages = " UNION ALL ".join(f"SELECT * FROM {stage}" for stage in stages)
    lap("copy")

    with connection.cursor() as cursor:
        cur = cursor.cursor  # psycopg2's own cursor
        cur.execute("SET LOCAL work_mem = '64MB'")
        cur.execute("SET LOCAL jit = off")  # compiling these wide expressions costs more than it saves
        # Key-value texts: each distinct one read once by the reader's own code.
        cells = Cells(Columns(header), ConformanceReport(), placeholders=FocusMapper.placeholders, focus_rules=True)
        work = scratch.conns[0].cursor()
        for i, table in plan.kv.items():
            work.execute(
                f"CREATE UNLOGGED TABLE {table} (raw text PRIMARY KEY, value jsonb, unparsed boolean, "
                + ", ".join(f"{r.replace('-', '_')} int" for r in _KV_RULES)
                + ")"
            )
            with connection.connection.cursor(name=f"billing_fast_kv{i}") as texts:
                texts.itersize = KV_BATCH
                texts.execute(
                    f"SELECT DISTINCT c{i} FROM ({all_stages}) s WHERE c{i} NOT IN ('NULL', '') "
                    f"AND NOT coalesce(CASE WHEN {plan._blank(f's.c{i}')} THEN true END, false)"
                )
                batch = []
                for (text,) in texts:
                    value, unparsed, counts = _kv_entry(cells, text)
                    batch.append((text, value, unparsed, *counts.values()))
                    if len(batch) >= KV_BATCH:
                        _insert_kv(work, table, batch)
                        batch = []
                _insert_kv(work, table, batch)
            work.execute(f"ANALYZE {table}")
        work.execute(f"CREATE UNLOGGED TABLE {services_table} (service text, category text)")
        plan.checks(services_table)
        lap("lookups")

        # Every cell read once, each part by its own database process: the typed values, the stored JSON
        # of the other fields, whether the reader must judge the row, each finding's flag.
        kept = [f"x.v{i}" for i in range(plan.width)] + [f"x.kv{i}_raw" for i in plan.kv]
        kept += [kind[kind.rindex(" AS ") + 4 :] for kind in plan.kinds]
        flags = [f"({condition}) AS n{k}" for k, (_, _, condition, _, stored) in enumerate(plan.notes) if stored]
        bad = " OR ".join(plan.bad) or "false"
        extra = _extra_sql(plan, header)
        service, category = plan.v("ServiceName"), plan.v("ServiceCategory")
        has_services = "ServiceName" in plan.position and "ServiceCategory" in plan.position

        def typed(part: _Part) -> Callable[[Any], list]:
            def job(conn) -> list:
                columns = ", ".join([f"s.rn + {part.offset} AS rn", *(f"s.{n}" for n in names), *plan.kinds])
                staged = f"(SELECT {columns} FROM {part.stage} s{part.where()} OFFSET 0)"
                inner = f"SELECT s.*, {', '.join(plan.inner)} FROM {staged} s{plan.joins()} OFFSET 0"
                with conn.cursor() as mine:
                    mine.execute(
                        f"CREATE UNLOGGED TABLE {part.typed} AS SELECT x.rn, {', '.join(kept)}, {extra} AS extra, "
                        f"({bad}) AS bad, {', '.join(flags)} FROM ({inner}) x"
                    )
                    if not has_services:
                        return []
                    mine.execute(
                        f"SELECT {service}, {category}, min(x.rn) FROM {part.typed} x "
                        f"WHERE {service} IS NOT NULL AND {category} IS NOT NULL GROUP BY 1, 2"
                    )
                    return mine.fetchall()

            return job

        found_pairs = _together(scratch, [typed(part) for part in parts])
        # Service names with more than one category: the first category (by row) is the right one.
        first: dict[str, tuple[int, str]] = {}
        pairs: dict[tuple[str, str], int] = {}
        for name, cat, row in (pair for part_pairs in found_pairs for pair in part_pairs):
            pairs[(name, cat)] = min(row, pairs.get((name, cat), row))
            if name not in first or row < first[name][0]:
                first[name] = (row, cat)
        bad_pairs = [(name, cat) for name, cat in pairs if first[name][1] != cat]
        if bad_pairs:
            work.executemany(f"INSERT INTO {services_table} VALUES (%s, %s)", bad_pairs)
        progress(tracker.rows, 0.6)
        lap("typed")

        # Each part's counts, at once; then the file's.
        rules = list(dict.fromkeys(rule for rule, *_ in plan.notes))
        by_rule = {rule: [k for k, note in enumerate(plan.notes) if note[0] == rule] for rule in rules}

        def hit(k: int) -> str:
            _, _, condition, counted, stored = plan.notes[k]
            if not stored:
                return f"({condition})"
            return f"x.n{k} > 0" if counted else f"x.n{k}"

        def any_hit(rule: str) -> str:
            return "(" + " OR ".join(hit(k) for k in by_rule[rule]) + ")"

        currency = f"v{plan.position['BillingCurrency']}"
        select = [
            "bool_or(bad)",
            f"min({currency})",
            f"max({currency})",
            f"sum(v{plan.position['BilledCost']})",
            f"sum(v{plan.position['EffectiveCost']})",
            "count(*)",
        ]
        select += [f"count(*) FILTER (WHERE {any_hit(rule)})" for rule in rules]
        minimums = set()
        for k, (_, _, _, counted, _) in enumerate(plan.notes):
            select.append(f"sum(x.n{k}) FILTER (WHERE {hit(k)})" if counted else f"count(*) FILTER (WHERE {hit(k)})")
            minimums.add(len(select))
            select.append(f"min(x.rn) FILTER (WHERE {hit(k)})")
        periods_sql = f"SELECT DISTINCT {plan.v('BillingPeriodStart')}, {plan.v('BillingPeriodEnd')} FROM {{}} x"

        def counted(part: _Part) -> Callable[[Any], tuple[tuple, set]]:
            def job(conn) -> tuple[tuple, set]:
                with conn.cursor() as mine:
                    mine.execute(f"SELECT {', '.join(select)} FROM {part.typed} x")
                    row = mine.fetchone()
                    mine.execute(periods_sql.format(part.typed))
                    return row, set(mine.fetchall())

            return job

        # The line items, in one statement of the import's transaction, while the parts are counted: a file
        # the counts send back to the reader is rolled back with the import's savepoint.
        typed_all = "(" + " UNION ALL ".join(f"SELECT * FROM {part.typed}" for part in parts) + ")"
        table = partitions.create(billing_import.pk)
        from .importer import COLUMNS, LINE_COLUMNS

        pascal = {name: column for column, name in FOCUS_COLUMNS.items()}
        first_id = partitions.line_item_id(billing_import.pk, 0)
        values = [f"{first_id} + x.rn + 1", str(billing_import.source_id), str(billing_import.pk), "x.rn + 1"]
        values += [plan.v(pascal[name]) for name in LINE_COLUMNS]
        values += ["x.extra", "false"]

        def insert() -> None:
            cur.execute(f"INSERT INTO {table} ({', '.join(COLUMNS)}) SELECT {', '.join(values)} FROM {typed_all} x")
            progress(tracker.rows, 0.9)

        done = _together(scratch, [counted(part) for part in parts], meanwhile=insert)
        result = _combine([row for row, _ in done], minimums)
        periods = set().union(*(found for _, found in done))
        first_part_rows = done[0][0][5]
        lap("insert and counts")
        bad_rows, low, high, billed, effective, rows = result[:6]
        if not rows:
            raise Declined("no data rows")
        if bad_rows:
            raise Declined("values the reader must judge")
        if low != high:
            raise Declined("more than one billing currency")
        rule_rows = dict(zip(rules, result[6 : 6 + len(rules)], strict=True))
        per_note = result[6 + len(rules) :]
        column_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        wanted_rows: set[int] = set()
        for k, (rule, column, *_) in enumerate(plan.notes):
            found, first_rn = per_note[2 * k], per_note[2 * k + 1]
            if found:
                column_counts[rule][column] += found
                wanted_rows.add(first_rn)

        # The first rows of every rule, for the examples: one ordered pass with running counts.
        present = [rule for rule in rules if rule_rows[rule]]
        if present:
            found_flags = [f"{any_hit(rule)} AS f{n}" for n, rule in enumerate(present)]
            running = [
                f"count(*) FILTER (WHERE f{n}) OVER (ORDER BY rn ROWS UNBOUNDED PRECEDING) AS r{n}"
                for n in range(len(present))
            ]
            keep = " OR ".join(f"(f{n} AND r{n} <= {EXAMPLES})" for n in range(len(present)))
            flag_list = ", ".join(f"f{n}" for n in range(len(present)))
            examples = (
                f"SELECT rn, {flag_list} FROM (SELECT *, {', '.join(running)} FROM "
                f"(SELECT x.rn, {', '.join(found_flags)} FROM {{table}} x{{where}}) flagged) counted WHERE {keep}"
            )
            # Most rules show early: the file's first rows (a twentieth, or PREFIX_ROWS, whichever is more; all
            # in the first part) usually hold every rule's first examples, and then the rest need not be read.
            head = max(rows // 20, PREFIX_ROWS)
            picked = None
            if head < first_part_rows:
                cur.execute(examples.format(table=parts[0].typed, where=f" WHERE x.rn <= {head}"))
                picked = cur.fetchall()
                needed = [min(EXAMPLES, rule_rows[rule]) for rule in present]
                if not all(sum(1 for p in picked if p[n + 1]) >= needed[n] for n in range(len(present))):
                    picked = None
            if picked is None:
                cur.execute(examples.format(table=typed_all, where=""))
                picked = cur.fetchall()
            wanted_rows.update(rn for rn, *_ in picked)
            offsets = {part.stage: part.offset for part in parts}
            cur.execute(
                " UNION ALL ".join(
                    f"SELECT s.rn + {offset} AS rn, {', '.join(f's.{n}' for n in names)} FROM {stage} s "
                    f"WHERE s.rn + {offset} = ANY(%(rows)s)"
                    for stage, offset in offsets.items()
                )
                + " ORDER BY rn",
                {"rows": sorted(wanted_rows)},
            )
            samples = cur.fetchall()
        else:
            samples = []

        lap("examples")

    logger.info(
        "billing import %s by COPY in %d part(s): %s",
        billing_import.pk,
        len(parts),
        ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()),
    )
    try:
        warnings = _warnings(header, base_report, first, samples, rule_rows, column_counts)
    except CellError as exc:  # a cell the checks above let through: the reader reports it
        raise Declined(str(exc)) from None
    return FastResult(rows=rows, billed=billed, effective=effective, periods=periods, currency=low, warnings=warnings)


def _extra_sql(plan: _Plan, header: list[str]) -> str:
    """The ``extra`` JSON of a row as importer._extra builds it: non-null FOCUS fields without a column, and
    under "x" the file's other columns (and key-value text that could not be read)."""
    from .importer import EXTRA_COLUMNS

    pascal = {name: column for column, name in FOCUS_COLUMNS.items()}
    scalars, nested = [], []
    for name in EXTRA_COLUMNS:
        column = pascal[name]
        if column not in plan.position:
            continue
        if column in KEY_VALUE_COLUMNS:  # a dict may hold nulls of its own: added whole, not stripped
            v = plan.v(column)
            nested.append(f"CASE WHEN {v} IS NULL THEN '{{}}' ELSE jsonb_build_object({_lit(name)}, {v}) END")
        else:
            scalars += [_lit(name), f"{plan.v(column)}::text"]
    x = []
    for i, column in plan.extras:
        x += [_lit(column), f"x.v{i}"]
    for i in plan.kv:
        x += [_lit("x_Unparsed" + header[i]), f"x.kv{i}_raw"]
    if x:
        scalars += ["'x'", f"NULLIF(jsonb_strip_nulls(jsonb_build_object({', '.join(x)})), '{{}}')"]
    parts = [f"jsonb_strip_nulls(jsonb_build_object({', '.join(scalars)}))"] if scalars else []
    parts += nested
    return f"NULLIF({' || '.join(parts)}, '{{}}')" if parts else "NULL"


def _insert_kv(cursor, table: str, batch: list[tuple]) -> None:
    if batch:
        execute_values(cursor, f"INSERT INTO {table} VALUES %s", batch, page_size=len(batch))


def _warnings(header, base_report, first, samples, rule_rows, column_counts) -> list[dict[str, Any]]:
    """The conformance findings as the reader reports them: examples and order from the reader itself."""
    report = _RecordingReport()
    mapper = FocusMapper(header, report, text_only=True)  # its header notes are in base_report already
    report.stream.clear()
    report._findings.clear()
    checker = ConformanceChecker(report)
    checker._service_categories = {name: cat for name, (_, cat) in first.items()}
    for sample in samples:
        rn, record = sample[0], list(sample[1:])
        row = mapper.read(rn + 1, record)
        checker.check(row)
    report.start_row(-1)  # ends the last row
    findings: dict[str, dict[str, Any]] = {}
    for finding in base_report.findings.values():
        findings[finding.rule] = {
            "rule": finding.rule,
            "description": finding.description,
            "rows": finding.rows,
            "columns": dict(finding.columns.most_common()),
            "examples": [{"row": e.row, "column": e.column, "value": e.value} for e in finding.examples],
        }
    order: dict[str, list[str]] = defaultdict(list)
    for row, rule, column, value in report.stream:
        entry = findings.get(rule)
        if entry is None:
            entry = findings[rule] = {
                "rule": rule,
                "description": RULES[rule],
                "rows": rule_rows.get(rule, 0),
                "columns": {},
                "examples": [],
            }
        if column and column not in order[rule]:
            order[rule].append(column)
        if len(entry["examples"]) < EXAMPLES:
            example = Example(row, column, None if value is None else show(value, 100))
            entry["examples"].append({"row": example.row, "column": example.column, "value": example.value})
    for rule, columns in order.items():
        counts = column_counts.get(rule, {})
        if set(columns) != set(counts):
            raise Declined("findings differ from the reader's")
        ranked = sorted(columns, key=lambda c: -counts[c])
        findings[rule]["columns"] = {c: counts[c] for c in ranked}
    if set(findings) - set(base_report.findings) != {r for r, n in rule_rows.items() if n}:
        raise Declined("findings differ from the reader's")
    return sorted(findings.values(), key=lambda f: -f["rows"])
