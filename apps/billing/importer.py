"""The one write path for billing files: the scheduled pull, the upload form and the command line.

A file replaces exactly the line items of the (source, billing period) pairs it covers, inside one
transaction, so a restated month re-delivered by the provider never double counts and a rejected or
interrupted import leaves the earlier data untouched. Rows stream from the reader straight into the
database (PostgreSQL COPY in chunks; batched inserts elsewhere): memory does not grow with the file.

On PostgreSQL a native FOCUS CSV file (plain or gzip) is read and checked by Arrow on whole columns and
written by COPY (``arrowpath``); a file with cells Arrow leaves alone goes in by COPY and is read in SQL
(``fastpath``), with the reader's rules. When a path meets a cell it does not read exactly as the reader
does, or the file is invalid, it rolls back to a savepoint and the next one takes the file, down to the
reader here, row by row: every path gives the same rows, totals, findings and errors.
"""

import csv
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from . import fastpath, partitions
from .formats import BillingFileError, BillingFileReader, NormalizedRow
from .models import BillingImport, BillingLineItem, BillingSource
from .rollups import allocate_written, refresh_periods

logger = logging.getLogger(__name__)

CHUNK_ROWS = 5_000
PROGRESS_EVERY = 5_000
MAX_STORED_ERRORS = 200

# NormalizedRow fields stored in their own column; every other non-null field goes to ``extra``.
LINE_COLUMNS = [
    "billing_period_start",
    "billing_period_end",
    "charge_period_start",
    "charge_period_end",
    "billing_currency",
    "billed_cost",
    "effective_cost",
    "list_cost",
    "contracted_cost",
    "list_unit_price",
    "contracted_unit_price",
    "consumed_quantity",
    "consumed_unit",
    "pricing_quantity",
    "pricing_unit",
    "pricing_category",
    "charge_category",
    "charge_class",
    "charge_frequency",
    "charge_description",
    "provider_name",
    "publisher_name",
    "invoice_issuer_name",
    "billing_account_id",
    "sub_account_id",
    "sub_account_name",
    "region_id",
    "region_name",
    "service_name",
    "service_category",
    "resource_id",
    "resource_name",
    "resource_type",
    "sku_id",
    "tags",
]
EXTRA_COLUMNS = [f.name for f in fields(NormalizedRow) if f.name not in {*LINE_COLUMNS, "row", "extras"}]
JSON_COLUMNS = {"tags", "extra"}


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value.isoformat() if hasattr(value, "isoformat") else value


def _extra(row: NormalizedRow) -> dict[str, Any] | None:
    extra = {name: _jsonable(v) for name in EXTRA_COLUMNS if (v := getattr(row, name)) is not None}
    if row.extras:
        extra["x"] = row.extras
    return extra or None


class _Writer:
    def __init__(self, billing_import: BillingImport) -> None:
        self.source_id = billing_import.source_id
        self.import_id = billing_import.pk
        self.first_id = partitions.line_item_id(billing_import.pk, 0)
        self.table = partitions.create(billing_import.pk)
        self.pending: list[NormalizedRow] = []

    def add(self, row: NormalizedRow) -> None:
        self.pending.append(row)
        if len(self.pending) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        raise NotImplementedError


COLUMNS = ["id", "source_id", "billing_import_id", "row_number", *LINE_COLUMNS, "extra", "is_shared"]


def _db_values(writer: "_Writer", row: NormalizedRow) -> list[Any]:
    values: list[Any] = [writer.first_id + row.row, writer.source_id, writer.import_id, row.row]
    for name in LINE_COLUMNS:
        value = getattr(row, name)
        if value is None:
            values.append(None)
        elif name in JSON_COLUMNS:
            values.append(json.dumps(value))
        elif isinstance(value, Decimal):
            values.append(str(value))  # text: the database parses every digit, no float on the way
        else:
            values.append(value)
    extra = _extra(row)
    values.append(json.dumps(extra) if extra is not None else None)
    values.append(False)
    return values


class _CopyWriter(_Writer):
    """PostgreSQL: COPY ... FROM STDIN in chunks, the fastest way in that keeps every digit."""

    def flush(self) -> None:
        if not self.pending:
            return
        buffer = io.StringIO()
        out = csv.writer(buffer)
        for row in self.pending:
            # None -> an unquoted empty field, which COPY reads as NULL.
            out.writerow(["" if v is None else "f" if v is False else v for v in _db_values(self, row)])
        buffer.seek(0)
        with connection.cursor() as cursor:
            cursor.cursor.copy_expert(f"COPY {self.table} ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)", buffer)
        self.pending.clear()


class _InsertWriter(_Writer):
    """Other databases (the embedded SQLite): one prepared INSERT, executed for many rows at once."""

    def flush(self) -> None:
        if not self.pending:
            return
        placeholders = ", ".join(["%s"] * len(COLUMNS))
        sql = f"INSERT INTO {self.table} ({', '.join(COLUMNS)}) VALUES ({placeholders})"
        adapt = connection.ops.adapt_datetimefield_value  # the backend's own storage form for datetimes
        rows = [[adapt(v) if isinstance(v, datetime) else v for v in _db_values(self, row)] for row in self.pending]
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)
        self.pending.clear()


def progress_key(import_id: int) -> str:
    return f"billing:import-progress:{import_id}"


def import_progress(billing_import: BillingImport) -> dict[str, Any]:
    """How far a running import has got: rows read so far and, for files on disk, the share of bytes."""
    if billing_import.is_finished:
        return {"rows": billing_import.rows_read, "percent": 100}
    return cache.get(progress_key(billing_import.pk)) or {"rows": 0, "percent": 0}


def _error_dicts(exc: BillingFileError) -> list[dict[str, Any]]:
    errors = exc.errors or ()
    if not errors:
        return [
            {"row": exc.row, "column": exc.column, "value": exc.value, "message": exc.problem, "expected": exc.expected}
        ]
    return [
        {"row": e.row, "column": e.column, "value": e.value, "message": e.problem, "expected": e.expected}
        for e in errors[:MAX_STORED_ERRORS]
    ]


def billing_import_claim(*, import_id: int) -> BillingImport | None:
    """Mark an import as running, unless it already finished (a retried or duplicate task is then a no-op)."""
    claimed = BillingImport.objects.filter(
        pk=import_id, status__in=[BillingImport.Status.QUEUED, BillingImport.Status.RUNNING]
    ).update(status=BillingImport.Status.RUNNING, started_at=timezone.now())
    if claimed != 1:
        return None
    BillingImport.objects.filter(pk=import_id).update(attempts=F("attempts") + 1)
    return BillingImport.objects.select_related("source").get(pk=import_id)


def _open(billing_import: BillingImport):
    try:
        return open(billing_import.stored_path, "rb")
    except OSError as exc:
        raise BillingFileError(billing_import.filename, f"cannot be opened ({exc.strerror})") from None


def _fast_import(billing_import, reader, raw, report) -> "fastpath.FastResult | None":
    """The PostgreSQL bulk paths, each in a savepoint; None when the file needs the portable reader.

    Arrow first (cells checked on whole columns in this process, rows written by one COPY), then the SQL
    path (the file copied as text, cells checked in the database) for a file Arrow declines.
    """
    from . import arrowpath  # Arrow loads in the worker only

    if arrowpath.applies(reader):
        try:
            with transaction.atomic():
                return arrowpath.run(billing_import=billing_import, reader=reader, raw=raw, progress=report)
        except (fastpath.Declined, DatabaseError, connection.Database.Error) as exc:
            logger.info("billing import %s: checked in SQL (%s)", billing_import.pk, str(exc).strip()[:200])
    try:
        with transaction.atomic():
            return fastpath.run(billing_import=billing_import, reader=reader, raw=raw, progress=report)
    except (fastpath.Declined, DatabaseError, connection.Database.Error) as exc:  # the driver's own errors, too
        logger.info("billing import %s: read row by row (%s)", billing_import.pk, str(exc).strip()[:200])
        return None


def _portable_import(billing_import, reader, raw, size, report) -> tuple[Decimal, Decimal, int]:
    """Every format and database: the reader's rows, written in chunks."""
    writer = _CopyWriter(billing_import) if connection.vendor == "postgresql" else _InsertWriter(billing_import)
    billed = effective = Decimal("0")
    count = 0
    for row in reader.rows():
        writer.add(row)
        billed += row.billed_cost
        effective += row.effective_cost
        count += 1
        if count % PROGRESS_EVERY == 0:
            report(count, min(raw.tell() / size, 1.0) if size else None)  # compressed bytes read, too
    writer.flush()
    return billed, effective, count


def _periods_imported_before(billing_import: BillingImport, period_starts: list[datetime]) -> bool:
    """Whether an earlier import of the source holds rows of these billing periods (line items only come in
    by succeeded imports, which list their periods). A new month has none: deleting them would only walk
    the rows just written."""
    wanted = {start.date().isoformat() for start in period_starts}
    listed = (
        BillingImport.objects.filter(source_id=billing_import.source_id, status=BillingImport.Status.SUCCEEDED)
        .exclude(pk=billing_import.pk)
        .values_list("periods", flat=True)
    )
    return any(wanted.intersection(periods or ()) for periods in listed.iterator())


def billing_import_run(
    *, billing_import: BillingImport, on_progress: Callable[[int, float | None], None] | None = None
) -> BillingImport:
    """Import the file of a claimed import. Never raises BillingFileError: a rejection is recorded on the import.

    Other exceptions (the database going away, a killed worker) leave the import running and propagate,
    so the task is retried; the transaction guarantees that nothing of the attempt remains.
    """
    started = time.monotonic()
    steps: dict[str, float] = {}  # seconds per step, for the log
    fmt = billing_import.format or billing_import.source.format  # a format chosen for this file wins
    size = billing_import.size
    try:
        with transaction.atomic(), _open(billing_import) as raw:
            # One import per source at a time: a second one waits here rather than interleaving.
            BillingSource.objects.select_for_update().filter(pk=billing_import.source_id).first()
            reader = BillingFileReader(
                raw, fmt=None if fmt == BillingSource.Format.AUTO else fmt, filename=billing_import.filename
            )

            def report(count: int, fraction: float | None) -> None:
                cache.set(
                    progress_key(billing_import.pk),
                    {"rows": count, "percent": round(fraction * 100) if fraction is not None else None},
                    timeout=3600,
                )
                if on_progress:
                    on_progress(count, fraction)

            fast = None
            clock = time.monotonic()
            if fastpath.applies(reader):
                fast = _fast_import(billing_import, reader, raw, report)
                if fast is None:  # the bulk path gave the file back: read it from the start
                    raw.seek(0)
                    reader = BillingFileReader(raw, fmt=reader.format, filename=billing_import.filename)
            if fast is None:
                billed, effective, count = _portable_import(billing_import, reader, raw, size, report)
                periods, currency, rows_read = reader.billing_periods, reader.currency, reader.rows_read
                warnings = reader.report.as_list()
            else:
                billed, effective, count = fast.billed, fast.effective, fast.rows
                periods, currency, rows_read, warnings = fast.periods, fast.currency, fast.rows, fast.warnings
            steps["read and write" if fast is None else "read and write by COPY"] = time.monotonic() - clock
            clock = time.monotonic()
            allocated = located = fast is not None and fast.allocated  # the Arrow path applies all of it
            groups = fast.groups if fast is not None and fast.allocated else None  # and sums the rollups
            if not allocated and allocate_written(billing_import.pk):
                allocated = True
                steps["allocate by rewriting"] = time.monotonic() - clock
                clock = time.monotonic()
            partitions.attach(billing_import.pk)
            steps["index"] = time.monotonic() - clock
            clock = time.monotonic()
            period_starts = sorted(start for start, _ in periods)
            replaced = 0
            if _periods_imported_before(billing_import, period_starts):
                replaced, _ = (
                    BillingLineItem.objects.filter(
                        source_id=billing_import.source_id, billing_period_start__in=period_starts
                    )
                    .exclude(billing_import_id=billing_import.pk)
                    .delete()
                )
            steps["replace"] = time.monotonic() - clock
            clock = time.monotonic()
            # The periods now hold only the rows just written: nothing to reset before allocating.
            refresh_periods(
                source_id=billing_import.source_id,
                period_starts=period_starts,
                fresh=True,
                allocated=allocated,
                located=located,
                table=partitions.name(billing_import.pk) if partitions.partitioned() else None,
                groups=groups,
            )
            steps["allocate and roll up"] = time.monotonic() - clock
            billing_import.format = reader.format
            billing_import.focus_version = reader.focus_version or ""
            billing_import.currency = currency or ""
            billing_import.periods = [p.date().isoformat() for p in period_starts]
            billing_import.rows_read = rows_read
            billing_import.rows_imported = count
            billing_import.rows_rejected = 0
            billing_import.rows_replaced = replaced
            billing_import.billed_total = billed
            billing_import.effective_total = effective
            billing_import.warnings = warnings
            billing_import.errors = []
            billing_import.error = ""
            billing_import.status = BillingImport.Status.SUCCEEDED
            billing_import.finished_at = timezone.now()
            billing_import.save()
            clock = time.monotonic()
        steps["commit"] = time.monotonic() - clock
        if replaced:  # earlier imports may have no rows left
            try:
                partitions.drop_empty()
            except DatabaseError as exc:  # the import stands; the next one tries again
                logger.warning("billing import %s: empty partitions not dropped (%s)", billing_import.pk, exc)
    except BillingFileError as exc:
        billing_import.status = BillingImport.Status.FAILED
        billing_import.error = str(exc)
        billing_import.errors = _error_dicts(exc)
        billing_import.rows_read = getattr(exc, "row", None) or 0
        billing_import.rows_imported = 0
        billing_import.rows_rejected = len(exc.errors) if exc.errors else 0
        billing_import.finished_at = timezone.now()
        billing_import.save()
    finally:
        cache.delete(progress_key(billing_import.pk))
        fastpath.scratch_drop(billing_import.pk)  # the bulk path's work tables, now that nothing reads them
    logger.info(
        "billing import %s %s in %.1fs%s",
        billing_import.pk,
        billing_import.status,
        time.monotonic() - started,
        f" ({', '.join(f'{step} {seconds:.2f}s' for step, seconds in steps.items())})" if steps else "",
    )
    return billing_import
