"""Vectorised bulk path for native FOCUS CSV files on PostgreSQL: Arrow reads and checks, COPY writes.

Arrow (the library Parquet files are read with) parses the file block by block on its own threads, and
every rule runs on whole columns at once; each checked block goes to the database as line-item rows by one
COPY of the import's own transaction, on a thread of its own, while the next block is read. Memory holds
a few blocks, whatever the file's size.

It reads only the common shapes of each cell (plain decimals, the two usual date/time forms, key-value
text the reader can parse) exactly as the reader does: the rules are those of ``fastpath``'s SQL, which
mirror the reader's, cell for cell. Anything else makes it decline, and the importer then gives the file to
the SQL path and, if that declines too, to the reader: every file gives the same rows, totals, findings and
errors whichever way it went in. Conformance examples come from the reader itself, run on the few rows
that hold each rule's first findings.
"""

import contextlib
import gzip
import json
import logging
import queue
import re
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from django.conf import settings
from django.db import connection
from django.utils import timezone

from . import arrowalloc, fastpath, partitions, rollups
from .formats import FOCUS_COLUMNS, BillingFileReader
from .formats.base import (
    DATETIME_COLUMNS,
    DECIMAL_COLUMNS,
    ENUMERATIONS,
    KEY_VALUE_COLUMNS,
    MANDATORY_COLUMNS,
    CellError,
)
from .formats.conformance import ConformanceReport, _differs, _product_differs
from .formats.focus import FocusMapper
from .formats.sources import GZIP_MAGIC
from .formats.values import Cells, Columns

logger = logging.getLogger(__name__)

Declined = fastpath.Declined
BLOCK_BYTES = 6 << 20  # bytes of the file Arrow parses at a time
QUEUED_BLOCKS = 2  # checked blocks waiting for the COPY at most
READ_AHEAD = 2  # blocks of text Arrow may read beyond the batches it has handed over
READ_SHARE = 0.9  # progress shown once the whole file is read and written
MERGE_GROUPS = 32  # blocks' rollup sums kept before they are merged into one table
ROLLUP_PLACES = 18  # decimal places the line items keep of an amount (models.MONEY)
KV_CACHE = 50_000  # key-value texts whose reading is kept; the cache starts over when full
MAX_SERVICES = 100_000  # distinct service names followed for the service-category rule
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
_STRING = pa.string()
_AMOUNT = pa.decimal128(38, ROLLUP_PLACES)
_BARE_POINTS = pa.array([".", "+.", "-."])
_SPECIAL_TEXTS = ("NULL", *sorted(FocusMapper.placeholders))  # cells that hold no value
_TENTHS = pa.array([10.0**-places for places in range(64)])  # one unit in the last place, by decimal places
# What reading the file may raise (a short record, bad UTF-8, a truncated gzip stream): the reader reports it.
_UNREADABLE = (pa.ArrowException, OSError, EOFError, zlib.error)
_PRINTABLE = bytes(range(0x20, 0x100))  # deleted from a text, what is left is control characters


def _copy_special(data: bytes) -> bool:
    """Whether text holds a byte COPY's text format escapes."""
    return b"\\" in data or b"\t" in data or b"\n" in data or b"\r" in data


def _json_special(data: bytes) -> bool:
    """Whether text holds a byte a JSON string escapes."""
    return b'"' in data or b"\\" in data or bool(data.translate(None, _PRINTABLE))


@cache
def _blank_pattern() -> str:
    """Whitespace only, as str.isspace() sees it, as an RE2 pattern."""
    spaces = (chr(code) for code in range(0x110000) if chr(code).isspace())
    return "^[" + "".join(f"\\x{{{ord(ch):x}}}" for ch in spaces) + "]+$"


def applies(reader: BillingFileReader) -> bool:
    """The SQL path's files, less those with columns this path leaves to it (FOCUS fields without a column of
    their own that are not text: they go to ``extra`` in the reader's own forms), repeated names, header
    names that span lines, and a cache kept in the database."""
    if not fastpath.applies(reader):
        return False
    # The COPY holds the import's connection while progress is reported: a cache kept in the same database
    # (DatabaseCache) would need that connection too.
    if "DatabaseCache" in settings.CACHES.get("default", {}).get("BACKEND", ""):
        return False
    header = list(reader.columns)
    if any("\n" in column or "\r" in column for column in header):  # Arrow skips the header as one line
        return False
    if len(set(header)) != len(header):
        return False
    from .importer import EXTRA_COLUMNS

    extra = set(EXTRA_COLUMNS)
    for column in header:
        name = FOCUS_COLUMNS.get(column)
        if name in extra and (column in DECIMAL_COLUMNS or column in DATETIME_COLUMNS or column in KEY_VALUE_COLUMNS):
            return False
        if name is not None and name not in extra and column in KEY_VALUE_COLUMNS and column != "Tags":
            return False
    return True


@dataclass
class _Note:
    rule: str
    column: str
    count: int = 0  # rows, or notes for the key-value rules
    first: int | None = None  # the first row (1 = the first record after the header)


@dataclass
class _Rule:
    rows: int = 0
    examples: int = 0  # rows kept for the examples so far


@dataclass
class _State:
    header: list[str]
    notes: dict[tuple[str, str], _Note] = field(default_factory=dict)
    rules: dict[str, _Rule] = field(default_factory=lambda: defaultdict(_Rule))
    first: dict[str, tuple[int, str]] = field(default_factory=dict)  # service -> (row, its first category)
    periods: set[tuple[datetime, datetime]] = field(default_factory=set)
    currencies: set[str] = field(default_factory=set)
    billed: Decimal = Decimal(0)
    effective: Decimal = Decimal(0)
    rows: int = 0
    samples: dict[int, list[str]] = field(default_factory=dict)  # row -> its record, for the examples
    allocation: Any = None  # an arrowalloc.Plan while the rows get their allocation here
    allocated_all: bool = True  # no block had to leave its allocation to the database
    unallocated: bool = False  # nothing to allocate (no rules, environments or locations): the keys stay empty
    # The rollup's sums (rollups._groups) as the rows go by: per block, merged now and then. Given up (None)
    # where the database's own sums could differ: amounts with more places than it keeps, a time zone
    # other than UTC, or an allocation the database makes after the rows are written.
    groups: list | None = field(default_factory=list)
    bound: float = 0.0  # the largest sum the amounts could reach so far
    kv_cache: dict[str, tuple[str, dict[str, int]]] = field(default_factory=dict)


class _Counted:
    """The file as Arrow reads it, counting the bytes read (of the file on disk when it is gzip)."""

    def __init__(self, raw: IO[bytes]) -> None:
        raw.seek(0)
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        self.raw = raw
        self.layer = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        self.unpacked = 0  # bytes handed to Arrow
        self.batches = 0  # batches Arrow has handed over
        self.turn = threading.Condition()
        self.reading = threading.Lock()
        self.stopped = False
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        # Arrow would read far ahead of the batches it has handed over (hundreds of megabytes): it waits
        # here once it is READ_AHEAD blocks ahead. The wait is bounded, so a reader that needs more
        # text for one batch (a very long record) is never stuck.
        with self.turn:
            self.turn.wait_for(
                lambda: self.stopped or self.unpacked < (self.batches + READ_AHEAD) * BLOCK_BYTES, timeout=5
            )
        with self.reading:
            if self.stopped:  # the import has moved on: the file is another path's now
                return b""
            data = self.layer.read(n)
        self.unpacked += len(data)
        return data

    def stop(self) -> None:
        """No more reading by Arrow's threads (which may still be reading ahead), once any read under way ends:
        when this path gives the file back, the next one reads it from the start on the same file object."""
        with self.turn:
            self.stopped = True
            self.turn.notify_all()
        with self.reading:
            if self.layer is not self.raw:
                self.layer.close()

    def handed(self, batches: int) -> None:
        with self.turn:
            self.batches = batches
            self.turn.notify_all()

    def share(self, batches: int, size: int | None) -> float | None:
        """The share of the file read so far, about. Arrow reads ahead, so position tells little; each batch
        is one block of the (uncompressed) text, and gzip's ratio so far converts that to bytes on disk."""
        if not size or not self.unpacked:
            return None
        return min(batches * BLOCK_BYTES * self.raw.tell() / self.unpacked / size, 1.0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


class _CopyFeed:
    """What the COPY reads: the blocks of COPY text the reading thread has checked, in order."""

    def __init__(self) -> None:
        self.blocks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=QUEUED_BLOCKS)
        self.buffer = b""

    def read(self, n: int = -1) -> bytes:
        while not self.buffer:
            block = self.blocks.get()
            if block is None:
                return b""
            if isinstance(block, BaseException):
                raise block  # COPY is then abandoned (psycopg2 sends CopyFail)
            self.buffer = block
        data, self.buffer = self.buffer, b""
        return data


class _Writer(threading.Thread):
    """One COPY into the line items on the import's own connection, fed block by block."""

    def __init__(self, sql: str) -> None:
        super().__init__(name="billing-import-copy", daemon=True)
        self.sql = sql
        self.feed = _CopyFeed()
        self.cursor = connection.connection.cursor()  # psycopg2's, for this thread alone until joined
        self.error: BaseException | None = None
        self.waited = 0.0  # seconds the reading thread waited for the COPY

    def run(self) -> None:
        try:
            self.cursor.copy_expert(self.sql, self.feed, size=1 << 20)
        except BaseException as exc:  # handed to the reading thread
            self.error = exc
            # Unblock the reading thread, which may wait on a full queue.
            with contextlib.suppress(queue.Empty):
                while True:
                    self.feed.blocks.get_nowait()

    def put(self, block: bytes | BaseException | None) -> None:
        started = time.monotonic()
        while self.is_alive():
            try:
                self.feed.blocks.put(block, timeout=0.2)
                break
            except queue.Full:
                continue
        self.waited += time.monotonic() - started
        if self.error is not None:
            raise self.error

    def finish(self) -> None:
        self.put(None)
        self.join()
        self.cursor.close()
        if self.error is not None:
            raise self.error

    def abandon(self, reason: BaseException) -> None:
        if self.is_alive():
            with contextlib.suppress(BaseException):
                self.put(reason)
            self.join()
        with contextlib.suppress(BaseException):
            self.cursor.close()


def run(
    *,
    billing_import,
    reader: BillingFileReader,
    raw: IO[bytes],
    progress: Callable[[int, float | None], None],
) -> "fastpath.FastResult":
    fastpath.drop_stale(billing_import.pk)  # this path makes none, but a killed import may have
    header = list(reader.columns)
    base_report = reader.report
    state = _State(header)
    from .importer import COLUMNS

    source = _Counted(raw)
    names = [f"c{i}" for i in range(len(header))]
    try:
        stream = pacsv.open_csv(
            pa.PythonFile(source, mode="r"),
            read_options=pacsv.ReadOptions(skip_rows=1, column_names=names, block_size=BLOCK_BYTES, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, _STRING),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except _UNREADABLE as exc:  # the first block is read at once
        source.stop()
        raise Declined(f"Arrow: {str(exc)[:200]}") from None
    # Text format: tab-separated, \N for null; date/times without a zone are UTC, as the reader reads them.
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL TIME ZONE 'UTC'")
    # FREEZE: the rows go in as the import's own table's first ones (made in this savepoint), already marked
    # visible to everyone once the import commits: nothing has to visit them again to set hint bits.
    table = partitions.create(billing_import.pk)
    # The rules and environment tags, applied as the rows are written where this path can (arrowalloc).
    plan = arrowalloc.Plan.load()
    state.unallocated = plan is not None and plan.empty
    state.allocation = None if plan is None or plan.empty else plan
    if plan is None or timezone.get_current_timezone_name() != "UTC":
        state.groups = None
    names = [c for c in COLUMNS if c != "is_shared"] + arrowalloc.COLUMNS if state.allocation else COLUMNS
    writer = _Writer(f"COPY {table} ({', '.join(names)}) FROM STDIN WITH (FREEZE)")
    cells = Cells(Columns(header), ConformanceReport(), placeholders=FocusMapper.placeholders, focus_rules=True)
    size = billing_import.size
    checking = 0.0
    batches = 0
    started = time.monotonic()
    writer.start()
    try:
        for batch in _batches(stream):
            batches += 1
            source.handed(batches)
            clock = time.monotonic()
            block = _Block(state, batch, cells, billing_import)
            data = block.check_and_write()
            checking += time.monotonic() - clock
            writer.put(data)
            state.rows += batch.num_rows
            share = source.share(batches, size)
            progress(state.rows, None if share is None else share * READ_SHARE)
        writer.finish()
    except BaseException as exc:
        writer.abandon(exc if isinstance(exc, Declined) else Declined("reading stopped"))
        raise
    finally:
        source.stop()
    if not state.rows:
        raise Declined("no data rows")
    if len(state.currencies) > 1:
        raise Declined("more than one billing currency")
    streamed = time.monotonic() - started
    rule_rows = {rule: r.rows for rule, r in state.rules.items() if r.rows}
    column_counts: dict[str, dict[str, int]] = defaultdict(dict)
    for note in state.notes.values():
        if note.count:
            column_counts[note.rule][note.column] = column_counts[note.rule].get(note.column, 0) + note.count
    samples = [(row, *state.samples[row]) for row in sorted(state.samples)]
    # Every row has its allocation: the plan's, or none when there is nothing to allocate.
    allocated = state.unallocated or (state.allocation is not None and state.allocated_all)
    try:
        warnings = fastpath._warnings(header, base_report, state.first, samples, rule_rows, column_counts)
    except CellError as exc:
        raise Declined(str(exc)) from None
    logger.info(
        "billing import %s by COPY from Arrow: %s",
        billing_import.pk,
        f"read, checked and written {streamed:.2f}s (checking {checking:.2f}s, "
        f"waiting for the database {writer.waited:.2f}s)"
        + (", allocated as written" if state.allocation is not None and state.allocated_all else "")
        + (", rolled up as read" if state.groups is not None else ""),
    )
    return fastpath.FastResult(
        rows=state.rows,
        billed=state.billed,
        effective=state.effective,
        periods=state.periods,
        currency=next(iter(state.currencies)),
        warnings=warnings,
        allocated=allocated,
        groups=_merged_groups(state) if allocated and state.groups is not None else None,
    )


def _batches(stream):
    """The file's record batches; an Arrow error (a short record, bad UTF-8) hands the file back."""
    while True:
        try:
            batch = stream.read_next_batch()
        except StopIteration:
            return
        except _UNREADABLE as exc:
            raise Declined(f"Arrow: {str(exc)[:200]}") from None
        if batch.num_rows:
            yield batch


def _all(mask) -> bool:
    return bool(pc.all(mask).as_py())


def _any(mask) -> bool:
    return bool(pc.any(mask).as_py())


def _hits(mask):
    """The mask, or None when nothing is set (most checks find nothing: their work then stops)."""
    return mask if _any(mask) else None


class _Column:
    """A string column of the block and cheap facts about its bytes, to skip checks that cannot hit."""

    def __init__(self, array) -> None:
        self.array = array
        buffers = array.buffers()
        self.data = buffers[2].to_pybytes() if buffers[2] is not None else b""
        offsets = np.frombuffer(buffers[1], dtype=np.int32)[array.offset : array.offset + len(array) + 1]
        self.starts = offsets[:-1] - offsets[0]
        self.data = self.data[offsets[0] : offsets[-1]]
        self.lengths = np.diff(offsets)
        self.raw = np.frombuffer(self.data, dtype=np.uint8)
        # Each cell's first byte (0 for an empty cell).
        if len(self.raw):
            self.first = np.where(self.lengths > 0, self.raw[np.minimum(self.starts, len(self.raw) - 1)], 0)
        else:
            self.first = np.zeros(len(self.lengths), dtype=np.uint8)

    def find(self, texts) -> dict[str, Any]:
        """The cells that are exactly each of these texts, for the texts some cells are: cells of a text's
        length and first byte are compared, byte by byte (most columns hold none of the few texts)."""
        if not len(self.raw):
            return {}
        wanted = {len(t.encode()) * 256 + t.encode()[0]: t for t in texts}
        shape = self.lengths * 256 + self.first
        candidates = np.flatnonzero(np.isin(shape, list(wanted)))
        found = {}
        for text in texts:
            target = text.encode()
            at = candidates[shape[candidates] == len(target) * 256 + target[0]]
            for k in range(1, len(target)):
                if not len(at):
                    break
                at = at[self.raw[self.starts[at] + k] == target[k]]
            if len(at):
                mask = np.zeros(len(self.lengths), dtype=bool)
                mask[at] = True
                found[text] = pa.array(mask)
        return found

    def empty(self):
        """Empty cells, or None when there are none."""
        mask = self.lengths == 0
        return pa.array(mask) if mask.any() else None

    def spaced_start(self):
        """Cells that start with a byte that may begin whitespace (as str.isspace() sees it), or None."""
        if not self.data:
            return None
        first = self.first
        mask = (self.lengths > 0) & ((first <= 0x20) | (first >= 0x80))
        return pa.array(mask) if mask.any() else None


class _Block:
    """One batch of records: its typed values, its findings, and its line-item rows as COPY text."""

    def __init__(self, state: _State, batch: pa.RecordBatch, cells: Cells, billing_import) -> None:
        self.state = state
        self.batch = batch
        self.n = batch.num_rows
        self.offset = state.rows  # rows of the file before this block
        self.cells = cells
        self.source_id = billing_import.source_id
        self.import_id = billing_import.pk
        self.header = state.header
        self.values: dict[str, Any] = {}  # column -> its normalised values (strings; null for null)
        self.text: dict[str, Any] = {}  # decimal column -> its text where not null
        self.floats: dict[str, Any] = {}  # decimal column -> the same as floats (for the rules' first look)
        self.times: dict[str, Any] = {}  # date/time column -> timestamps (UTC, without a zone)
        self.raw_times: dict[str, Any] = {}  # date/time column -> its text, as COPY reads it
        self.clean: set[str] = set()  # columns whose text needs no escaping for COPY
        self.masks: dict[str, list] = defaultdict(list)  # rule -> the masks of its notes in this block
        self.nulls = pa.nulls(self.n, _STRING)
        self.extra_clean = True  # whether the extra JSON needs no escaping for COPY
        self.ulps: dict[str, Any] = {}
        self.places: dict[str, Any] = {}
        self.dots: dict[str, Any] = {}
        self.allowed: set[str] = set()  # enumeration columns whose every value is an allowed one

    # -- notes ----------------------------------------------------------------------------------------

    def note(self, rule: str, column: str, mask, counts=None) -> None:
        if mask is None:
            return
        if mask.null_count:
            mask = pc.fill_null(mask, False)
        found = int(pc.sum(counts if counts is not None else mask).as_py() or 0)
        if not found:
            return
        entry = self.state.notes.get((rule, column))
        if entry is None:
            entry = self.state.notes[(rule, column)] = _Note(rule, column)
        entry.count += found
        if entry.first is None:
            at = pc.index(mask, True).as_py()
            entry.first = self.offset + at + 1
            self._keep([at])
        self.masks[rule].append(mask)

    def bad(self, mask, reason: str) -> None:
        if mask is not None and _any(pc.fill_null(mask, False)):
            raise Declined(reason)

    def _keep(self, positions) -> None:
        """Keep these records (positions in the block) for the reader, which makes the examples."""
        for at in positions:
            row = self.offset + at + 1
            if row not in self.state.samples:
                self.state.samples[row] = [column[at].as_py() for column in self.batch.columns]

    def _rules(self) -> None:
        for rule, masks in self.masks.items():
            hit = masks[0]
            for mask in masks[1:]:
                hit = pc.or_(hit, mask)
            totals = self.state.rules[rule]
            totals.rows += int(pc.sum(hit).as_py() or 0)
            need = fastpath.EXAMPLES - totals.examples
            if need > 0:
                positions = pc.indices_nonzero(hit)[:need].to_pylist()
                totals.examples += len(positions)
                self._keep(positions)

    # -- cells ----------------------------------------------------------------------------------------

    @staticmethod
    def _or(a, b):
        return b if a is None else a if b is None else pc.or_(a, b)

    def _blank(self, col: _Column):
        """Non-empty cells of whitespace only (str.isspace()); the pattern runs only where one may be."""
        maybe = col.spaced_start()
        if maybe is None:
            return None
        return pc.and_(maybe, pc.match_substring_regex(col.array, _blank_pattern()))

    def _kind(self, column: str, col: _Column, *, placeholders: bool):
        """Cells that hold no value (None: all do); notes the nulls written as NULL, empty or placeholder."""
        found = col.find(_SPECIAL_TEXTS if placeholders else ("NULL",))
        null = found.get("NULL")
        empty = self._or(col.empty(), self._blank(col))
        self.note("null-literal", column, null)
        self.note("empty-string", column, empty)
        special = self._or(null, empty)
        if placeholders:
            placeholder = None
            for text in sorted(FocusMapper.placeholders):
                placeholder = self._or(placeholder, found.get(text))
            if placeholder is not None:
                self.note("placeholder", column, placeholder)
                special = self._or(special, placeholder)
        return special

    def _valued(self, c, special):
        return c if special is None else pc.if_else(special, self.nulls, c)

    def _text(self, column: str, col: _Column, *, required: bool):
        c = col.array
        if required:  # BillingCurrency: an empty or placeholder value is an error
            special = pc.is_in(c, value_set=pa.array(["NULL", "", *sorted(FocusMapper.placeholders)]))
            self.bad(self._or(special, self._blank(col)), f"{column} empty")
            return c
        return self._valued(c, self._kind(column, col, placeholders=True))

    def _enum(self, column: str, col: _Column):
        c = col.array
        allowed = pa.array(ENUMERATIONS[column])
        special = self._kind(column, col, placeholders=True)
        inside = pc.is_in(c, value_set=allowed)
        settled = inside if special is None else pc.or_(inside, special)
        if _all(settled):  # every cell an allowed value or a null: the usual file
            self.allowed.add(column)
            return self._valued(c, special)
        # A value that is not ASCII might still fold to an allowed one (str.casefold): the reader decides.
        self.bad(pc.and_not(pc.invert(pc.string_is_ascii(c)), inside), f"{column}: text that is not ASCII")
        found = pc.index_in(pc.ascii_lower(c), value_set=pa.array([v.lower() for v in ENUMERATIONS[column]]))
        self.note("enum-case", column, pc.and_not(pc.is_valid(found), inside))
        otherwise = pc.if_else(pc.is_valid(found), pc.take(allowed, found), c)
        if special is not None:
            otherwise = pc.if_else(special, self.nulls, otherwise)
        return pc.if_else(inside, c, otherwise)

    def _decimal(self, column: str, col: _Column):
        c = col.array
        special = None if column in FocusMapper.required else self._kind(column, col, placeholders=False)
        # Plain decimals only: digits, one point, a sign in front. Exponents, NaN, blanks around the digits
        # go to the SQL path, which reads them as the reader does. With these bytes only, the float cast
        # takes exactly the plain forms (NULL cells are nulls by now).
        if col.data.translate(None, b"0123456789.+-NUL"):
            raise Declined(f"{column}: a number not written plainly")
        text = self._valued(c, special)
        try:
            self.floats[column] = pc.cast(text, pa.float64())
        except pa.ArrowInvalid:
            raise Declined(f"{column}: a number not written plainly") from None
        self.text[column] = text
        self.clean.add(column)
        return _without_trailing_zeros(text, self._dots(column), bare=_bare_point(col))

    def _datetime(self, column: str, col: _Column):
        c = col.array
        # The two usual forms: 2024-09-01T00:00:00Z and 2024-09-01 00:00:00 (UTC, with a note), told apart
        # by their bytes; any other byte where digits belong makes the cast below fail.
        lengths, starts = col.lengths, col.starts
        raw = np.frombuffer(col.data, dtype=np.uint8)
        if not len(raw) or not ((lengths == 19) | (lengths == 20)).all():
            raise Declined(f"{column}: a date/time in another form")
        last = len(raw) - 1
        middle = raw[np.minimum(starts + 10, last)]
        strict = (lengths == 20) & (middle == ord("T")) & (raw[np.minimum(starts + 19, last)] == ord("Z"))
        spaced = (lengths == 19) & (middle == ord(" "))
        if not (strict | spaced).all():
            raise Declined(f"{column}: a date/time in another form")
        if b"0000-" in col.data:
            self.bad(pc.starts_with(c, "0000"), f"{column}: year 0")
        try:  # a date that does not exist (2023-02-29) or digits out of range fail the cast
            stamps = pc.cast(c if spaced.all() else pc.utf8_slice_codeunits(c, 0, 19), pa.timestamp("s"))
        except pa.ArrowInvalid:
            raise Declined(f"{column}: a date/time that does not exist") from None
        self.note("datetime-format", column, None if strict.all() else pa.array(~strict))
        self.times[column] = stamps
        self.clean.add(column)
        # COPY reads both forms as UTC (the connection's time zone), and without the time's zeros: a billing
        # period's midnight as its date alone, whole minutes without their seconds (fewer bytes to read).
        # (A cell's only colons are its time's: "00:00:00" can only be a whole time of day.)
        if col.data.count(b"00:00:00") == self.n:
            return pc.utf8_slice_codeunits(c, 0, 10)
        if ((raw[starts + 17] == ord("0")) & (raw[starts + 18] == ord("0"))).all():
            return pc.utf8_slice_codeunits(c, 0, 16)
        return c

    def _key_values(self, column: str, col: _Column):
        special = self._kind(column, col, placeholders=False)
        encoded = pc.dictionary_encode(self._valued(col.array, special))
        texts = encoded.dictionary.to_pylist()
        store = self.state.kv_cache
        if len(store) + len(texts) > KV_CACHE:
            store.clear()
        values, counts = [], defaultdict(list)
        for text in texts:
            entry = store.get(text)
            if entry is None:
                value, unparsed, found = fastpath._kv_entry(self.cells, text)
                if unparsed:  # its raw text goes to extra: the SQL path writes that
                    raise Declined(f"{column}: key-value text the reader cannot parse")
                entry = store[text] = (value, found)
            values.append(entry[0])
            for rule in fastpath._KV_RULES:
                counts[rule].append(entry[1][rule])
        indices = encoded.indices
        if not any(_copy_special(value.encode()) for value in values if value):
            self.clean.add(column)
        for rule in fastpath._KV_RULES:
            if any(counts[rule]):
                per_row = pc.fill_null(pc.take(pa.array(counts[rule], pa.int64()), indices), 0)
                self.note(rule, column, pc.greater(per_row, 0), counts=per_row)
        return pc.take(pa.array(values, _STRING), indices)

    # -- the block ------------------------------------------------------------------------------------

    def v(self, column: str):
        return self.values.get(column, self.nulls)

    def check_and_write(self) -> bytes:
        from .importer import EXTRA_COLUMNS, LINE_COLUMNS

        columns = [_Column(array) for array in self.batch.columns]
        # Python's csv module refuses a field longer than its limit (counted in characters).
        for col in columns:
            if len(col.lengths) and int(col.lengths.max()) > fastpath.FIELD_LIMIT:
                self.bad(pc.greater(pc.utf8_length(col.array), fastpath.FIELD_LIMIT), "a field over the limit")
        extras = []
        for i, column in enumerate(self.header):
            col = columns[i]
            if column not in FOCUS_COLUMNS:
                extras.append((column, self._text(column, col, required=False), col))
            elif column in DECIMAL_COLUMNS:
                self.values[column] = self._decimal(column, col)
            elif column in DATETIME_COLUMNS:
                self.values[column] = self._datetime(column, col)
            elif column in KEY_VALUE_COLUMNS:
                self.values[column] = self._key_values(column, col)
            elif column in ENUMERATIONS:
                self.values[column] = self._enum(column, col)
            else:
                self.values[column] = self._text(column, col, required=column in FocusMapper.required)
            if column in self.values and column not in KEY_VALUE_COLUMNS and not _copy_special(col.data):
                self.clean.add(column)
        self._checks()
        self._rules()
        self._totals()

        pascal = {name: column for column, name in FOCUS_COLUMNS.items()}
        fields = [
            (name, self.values[pascal[name]], columns[self.header.index(pascal[name])])
            for name in EXTRA_COLUMNS
            if pascal[name] in self.values
        ]
        rows = np.arange(self.offset + 2, self.offset + 2 + self.n, dtype=np.int64)
        out = [
            pc.cast(pa.array(rows + partitions.line_item_id(self.import_id, 0)), _STRING),
            str(self.source_id),
            str(self.import_id),
            pc.cast(pa.array(rows), _STRING),
        ]
        for name in LINE_COLUMNS:
            column = pascal[name]
            if column not in self.values:
                out.append("\\N")
                continue
            value = self.values[column]
            out.append(value if column in self.clean else _escaped(value))
        extra = self._extra(fields, extras)
        out.append(extra if self.extra_clean else _escaped(extra))
        out += self._allocation()
        # One text per row, each ending in its line feed: the array's bytes are the COPY data (a null is \N).
        lines = pc.binary_join_element_wise(*out, "\t", null_handling="replace", null_replacement="\\N")
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset : lines.offset + self.n + 1]
        return lines.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]

    def _allocation(self) -> list:
        """The allocation columns (when this path allocates) and is_shared, which ends each row; the block's
        rollup sums with them."""
        plan = self.state.allocation
        if plan is None:
            self._rollup(None, None)
            return ["f\n"]
        try:
            keys, shared = plan.columns(self.n, self.v("Tags"), self.v("SubAccountId"), self.v("ServiceName"))
        except arrowalloc.NotHere:  # the database allocates the file after all (every row again)
            self.state.allocated_all = False
            self.state.groups = None
            return ["\\N"] * 4 + ["f\n"]
        self._rollup(keys, shared)
        return [*(pc.cast(key, _STRING) for key in keys), pc.if_else(shared, "t\n", "f\n")]

    def _rollup(self, keys, shared) -> None:
        """Sum the block's amounts per rollup key (``rollups._GROUP_BY`` and the billing period), as the
        database would sum the rows once written."""
        state = self.state
        if state.groups is None:
            return
        amounts = {}
        for name, column in (("billed", "BilledCost"), ("effective", "EffectiveCost")):
            if int(pc.max(self._places(column)).as_py() or 0) > ROLLUP_PLACES:
                state.groups = None  # the database rounds such amounts as it stores them: its sums differ
                return
            state.bound += float(pc.max(pc.abs(self.floats[column])).as_py() or 0) * self.n
            if state.bound >= 1e19:  # sums could pass what the amounts' type holds: the database's sums
                state.groups = None
                return
            amounts[name] = pc.cast(self.text[column], _AMOUNT)
        keys = keys or [pa.nulls(self.n, pa.int64())] * 4
        columns = {
            "billing_period_start": self.times["BillingPeriodStart"],
            "day": pc.cast(self.times["ChargePeriodStart"], pa.date32()),
            **dict(zip(_ALLOCATION_KEYS, keys, strict=True)),
            "is_shared": shared if shared is not None else pa.repeat(False, self.n),
            "provider_name": self.v("ProviderName"),
            "sub_account_id": self.v("SubAccountId"),
            "region_id": self.v("RegionId"),
            "charge_category": self.v("ChargeCategory"),
            "billing_currency": self.v("BillingCurrency"),
            **amounts,
        }
        state.groups.append(_grouped(pa.table(columns)))
        if len(state.groups) >= MERGE_GROUPS:
            state.groups = [_grouped(pa.concat_tables(state.groups), merging=True)]

    def _json_value(self, values, col: _Column | None, what: str):
        """Text values as the inside of JSON strings (null stays null)."""
        if col is None or _json_special(col.data):
            self.extra_clean = False  # the JSON holds backslashes: COPY's text format escapes them
            if col is None or col.data.translate(None, _PRINTABLE).strip(b"\t\n\r"):
                self.bad(pc.match_substring_regex(values, _CONTROL), f"{what}: control characters")
            for old, new in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
                values = pc.replace_substring(values, old, new)
        return values

    def _members(self, fields: list[tuple[str, Any, _Column | None]]) -> list[tuple[Any, bool]]:
        """'"name": "value"' of each field with a value in the block (null on the rows without), each with
        whether every row has it."""
        members = []
        for name, v, col in fields:
            if v.null_count == len(v):
                continue
            key = json.dumps(name)
            if "\\" in key:
                self.extra_clean = False
            member = pc.binary_join_element_wise(f'{key}: "', self._json_value(v, col, name), '"', "")
            members.append((member, not v.null_count))
        return members

    def _object(self, members: list[tuple[Any, bool]], opening: str, closing: str):
        """The members that are not null joined by commas between ``opening`` and ``closing``; null on the
        rows without any."""
        joined = (
            members[0][0]
            if len(members) == 1
            else pc.binary_join_element_wise(*(m for m, _ in members), ",", null_handling="skip")
        )
        whole = pc.binary_join_element_wise(opening, joined, closing, "")
        if len(members) == 1 or any(always for _, always in members):
            return whole  # a lone member's null makes the whole null; a member on every row, never
        return pc.if_else(pc.equal(joined, ""), self.nulls, whole)

    def _extra(self, fields, extras):
        """The ``extra`` JSON of each row as importer._extra builds it: the FOCUS fields without a column of
        their own and, under "x", the file's other columns; null when all are null."""
        body = self._members(fields)
        inner = self._members(extras) if extras else []
        if inner:
            body.append((self._object(inner, '"x": {', "}"), any(always for _, always in inner)))
        if not body:
            return self.nulls
        return self._object(body, "{", "}")

    def _ulp(self, column: str):
        """One unit in the last written place, as a float (the cells are plain decimals here)."""
        if column not in self.ulps:
            self.ulps[column] = pc.take(_TENTHS, pc.min_element_wise(self._places(column), len(_TENTHS) - 1))
        return self.ulps[column]

    def _dots(self, column: str):
        """Where the decimal point of each amount of a column is (-1: none)."""
        if column not in self.dots:
            self.dots[column] = pc.find_substring(self.text[column], ".")
        return self.dots[column]

    def _places(self, column: str):
        """The decimal places each amount of a column is written with."""
        if column not in self.places:
            dot = self._dots(column)
            self.places[column] = pc.if_else(
                pc.less(dot, 0), 0, pc.subtract(pc.subtract(pc.binary_length(self.text[column]), dot), 1)
            )
        return self.places[column]

    def _exactly(self, mask, candidates, columns: list[str], test):
        """Decide the rows the floating-point comparison cannot, with the reader's own Decimal function."""
        mask = pc.fill_null(mask, False)
        positions = pc.indices_nonzero(pc.fill_null(candidates, False)).to_pylist()
        if not positions:
            return mask
        texts = [self.text[c] for c in columns]
        values = mask.to_numpy(zero_copy_only=False).copy()
        for at in positions:
            values[at] = test(*(Decimal(t[at].as_py()) for t in texts))
        return pa.array(values, pa.bool_())

    def _differs(self, actual, expected, scale, present, columns: list[str], test):
        """Rows where actual and expected differ by more than 0.000001 and more than half of ``scale`` (the
        rounding the written digits allow), as the reader's ``test`` decides: floats first, Decimal where a
        float is too close to call."""
        gap = pc.abs(pc.subtract(actual, expected))
        doubled = pc.multiply(gap, 2.0)
        differs = pc.and_(pc.greater(gap, 1e-6), pc.greater(doubled, scale))
        near = self._near(gap, doubled, scale, pc.add(pc.abs(actual), pc.abs(expected)))
        return pc.and_(present, self._exactly(differs, pc.and_(present, near), columns, test))

    def _near(self, gap, doubled, scale, magnitude):
        """Where a float comparison of gap with 1e-6, or of doubled with scale, is too close to call."""
        slack = pc.add(pc.multiply(magnitude, 1e-12), 1e-15)
        return pc.or_(
            pc.less_equal(pc.abs(pc.subtract(gap, 1e-6)), slack),
            pc.less_equal(
                pc.abs(pc.subtract(doubled, scale)), pc.add(pc.multiply(slack, 2.0), pc.multiply(scale, 1e-12))
            ),
        )

    def _checks(self) -> None:
        """The ConformanceChecker's rules, on the normalised values (as fastpath._Plan.checks)."""
        v = self.v
        for column in MANDATORY_COLUMNS:
            value = self.values.get(column)
            if value is None:
                self.note("mandatory-null", column, pa.repeat(True, self.n))
            elif value.null_count:
                self.note("mandatory-null", column, pc.is_null(value))
        for column, allowed in ENUMERATIONS.items():
            value = self.values.get(column)
            if column in self.allowed:  # every value allowed (_enum saw it)
                continue
            if value is not None and value.null_count < len(value):
                self.note(
                    "enum-value", column, pc.and_(pc.is_valid(value), pc.invert(pc.is_in(value, pa.array(allowed))))
                )
        not_correction = pc.fill_null(pc.not_equal(v("ChargeClass"), "Correction"), True)
        category = v("ChargeCategory")
        quantity, unit = v("PricingQuantity"), v("PricingUnit")
        for rule, total, price in (
            ("list-cost", "ListCost", "ListUnitPrice"),
            ("contracted-cost", "ContractedCost", "ContractedUnitPrice"),
        ):
            if {total, price, "PricingQuantity"} <= self.text.keys():
                t, p, q = self.floats[total], self.floats[price], self.floats["PricingQuantity"]
                present = pc.and_(pc.and_(pc.is_valid(t), pc.is_valid(p)), pc.and_(pc.is_valid(q), not_correction))
                product = pc.multiply(p, q)
                scale = pc.add(
                    pc.add(
                        pc.multiply(pc.abs(p), self._ulp("PricingQuantity")), pc.multiply(pc.abs(q), self._ulp(price))
                    ),
                    self._ulp(total),
                )
                differs = self._differs(t, product, scale, present, [total, price, "PricingQuantity"], _product_differs)
                self.note(rule, total, differs)
        billed = self.floats["BilledCost"]
        is_credit = pc.fill_null(pc.equal(category, "Credit"), False)
        if _any(is_credit):
            for column in ("EffectiveCost", "ListCost", "ContractedCost"):
                if column in self.text:
                    a = self.floats[column]
                    scale = pc.add(self._ulp(column), self._ulp("BilledCost"))
                    present = pc.and_(is_credit, pc.is_valid(a))
                    self.note(
                        "credit-costs",
                        column,
                        self._differs(a, billed, scale, present, [column, "BilledCost"], _differs),
                    )
        has_quantity = pc.is_valid(quantity)
        has_unit = pc.is_valid(unit)
        self.note(
            "tax-pricing-quantity",
            "PricingQuantity",
            pc.and_(pc.equal(category, "Tax"), pc.or_(has_quantity, has_unit)),
        )
        self.note(
            "pricing-quantity-missing",
            "PricingQuantity",
            pc.and_(
                pc.and_(pc.is_in(category, value_set=pa.array(["Usage", "Purchase"])), not_correction),
                pc.invert(pc.and_(has_quantity, has_unit)),
            ),
        )
        self.note(
            "consumed-quantity",
            "ConsumedQuantity",
            pc.and_(pc.is_valid(v("ConsumedQuantity")), pc.fill_null(pc.not_equal(category, "Usage"), True)),
        )
        currency = v("BillingCurrency")
        self.note("currency-code", "BillingCurrency", self._currency_codes(currency))
        self._service_categories()
        cps, cpe = self.times["ChargePeriodStart"], self.times["ChargePeriodEnd"]
        bps, bpe = self.times["BillingPeriodStart"], self.times["BillingPeriodEnd"]
        self.note("period-order", "ChargePeriodStart", pc.greater_equal(cps, cpe))
        self.note("period-order", "BillingPeriodStart", pc.greater_equal(bps, bpe))
        self.note("charge-outside-billing-period", "ChargePeriodStart", pc.or_(pc.less(cps, bps), pc.greater(cpe, bpe)))

    def _currency_codes(self, currency):
        """Rows whose BillingCurrency is not three capital letters (a file has one code: checked once)."""
        codes = pc.unique(currency).to_pylist()
        wrong = [code for code in codes if not re.fullmatch(r"[A-Z]{3}", code)]
        return pc.is_in(currency, value_set=pa.array(wrong, _STRING)) if wrong else None

    def _service_categories(self) -> None:
        """Rows whose ServiceName came first (in the file) with another ServiceCategory."""
        if "ServiceName" not in self.values or "ServiceCategory" not in self.values:
            return
        service, category = self.values["ServiceName"], self.values["ServiceCategory"]
        rows = pa.array(np.arange(self.offset + 1, self.offset + 1 + self.n, dtype=np.int64))
        pairs = (
            pa.table({"s": service, "c": category, "rn": rows})
            .filter(pc.and_(pc.is_valid(service), pc.is_valid(category)))
            .group_by(["s", "c"])
            .aggregate([("rn", "min")])
            .sort_by("rn_min")
        )
        first = self.state.first
        wrong = []
        for name, cat, row in zip(*(pairs.column(k).to_pylist() for k in ("s", "c", "rn_min")), strict=True):
            if name not in first:
                if len(first) >= MAX_SERVICES:
                    raise Declined("too many service names to follow")
                first[name] = (row, cat)
            elif first[name][1] != cat:
                wrong.append(name + "\x00" + cat)
        if wrong:
            keys = pc.binary_join_element_wise(service, category, "\x00")
            self.note("service-category", "ServiceCategory", pc.is_in(keys, value_set=pa.array(wrong)))

    def _totals(self) -> None:
        state = self.state
        currencies = pc.unique(self.values["BillingCurrency"]).to_pylist()
        state.currencies.update(currencies)
        if len(state.currencies) > 1:
            raise Declined("more than one billing currency")
        state.billed += _sum(self.text["BilledCost"], self._places("BilledCost"))
        state.effective += _sum(self.text["EffectiveCost"], self._places("EffectiveCost"))
        periods = pa.table({"s": self.times["BillingPeriodStart"], "e": self.times["BillingPeriodEnd"]})
        for pair in periods.group_by(["s", "e"]).aggregate([]).to_pylist():
            state.periods.add((pair["s"].replace(tzinfo=UTC), pair["e"].replace(tzinfo=UTC)))


_ALLOCATION_KEYS = ("allocation_rule_id", "service_id", "environment_id", "location_id")  # arrowalloc.COLUMNS
_ROLLUP_KEYS = ["billing_period_start", *rollups._GROUP_BY]


def _grouped(table, *, merging: bool = False):
    """Rows (or sums of rows, ``merging``) summed per rollup key: billed, effective and the rows' count n."""
    if merging:
        aggregates = [("billed", "sum"), ("effective", "sum"), ("n", "sum")]
    else:
        aggregates = [("billed", "sum"), ("effective", "sum"), ("billed", "count", pc.CountOptions(mode="all"))]
    summed = table.group_by(_ROLLUP_KEYS, use_threads=False).aggregate(aggregates)
    names = {"billed_sum": "billed", "effective_sum": "effective", "billed_count": "n", "n_sum": "n"}
    return summed.rename_columns([names.get(name, name) for name in summed.column_names])


def _merged_groups(state: _State) -> dict[datetime, list[dict]]:
    """The rollup sums of the whole file by billing period, as ``rollups._groups`` reads them from the rows."""
    by_period: dict[datetime, list[dict]] = defaultdict(list)
    if not state.groups:
        return by_period
    for row in _grouped(pa.concat_tables(state.groups), merging=True).to_pylist():
        by_period[row.pop("billing_period_start").replace(tzinfo=UTC)].append(row)
    return by_period


def _bare_point(col: _Column) -> bool:
    """Whether some cell starts with its decimal point (.5, -.5): trimmed of zeros, one may lose every digit."""
    raw, starts = col.raw, col.starts[col.lengths > 1]
    if not len(raw) or not len(starts):
        return False
    first, second = raw[starts], raw[starts + 1]
    return bool(((first == ord(".")) | (((first == ord("-")) | (first == ord("+"))) & (second == ord(".")))).any())


def _without_trailing_zeros(text, dots, *, bare: bool):
    """Plain decimals without the zeros that end their fraction (5.2500 -> 5.25, 0.000 -> 0.): the same
    numbers to the database, in fewer bytes to read. A point with no digit left around it (``bare``: .000)
    becomes 0."""
    trimmed = pc.utf8_rtrim(text, characters="0")
    if bare:
        trimmed = pc.if_else(pc.is_in(trimmed, value_set=_BARE_POINTS), "0", trimmed)
    return pc.if_else(pc.greater_equal(dots, 0), trimmed, text)


def _escaped(values):
    """Text as COPY's text format reads it: backslash, tab, line feed and carriage return escaped."""
    for old, new in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        values = pc.replace_substring(values, old, new)
    return values


def _sum(text, places) -> Decimal:
    """The exact sum of plain decimal texts: in Arrow's decimal type where it holds them, else by Decimal."""
    scale = int(pc.max(places).as_py() or 0)
    try:
        total = pc.sum(pc.cast(text, pa.decimal128(38, scale))).as_py()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        total = None
    if total is None:
        return sum((Decimal(t) for t in text.to_pylist() if t is not None), Decimal(0))
    return total
