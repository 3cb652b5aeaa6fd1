"""Line items on PostgreSQL: one partition per import.

On PostgreSQL ``billing_billinglineitem`` is partitioned by list of ``billing_import_id`` (migration 0004):
each import writes its rows into a table of its own, created in the import's transaction, and attaches it
as that import's partition once the rows are in, so the rows appear together when the import commits, or
not at all. A fresh table costs the database less per row than the shared one: the bulk path copies into
it with FREEZE (no later pass to set visibility hints), and its b-tree indexes are built once, after the
rows, instead of row by row. Partial indexes on columns an import leaves empty (the allocation keys) are
created first: they cost nothing per row.

A line item's id is its import's id times 2**32 plus its row number: unique across partitions by
construction, without a sequence to ask per row nor a unique index to build per import (nothing reads line
items by id: migration 0007 dropped the primary key's index, which cost each import a pass over its rows).

An import whose rows were all replaced by later imports, or deleted, leaves an empty partition, which
``drop_empty`` removes after the import's transaction. Other databases (the embedded SQLite) keep one table.
"""

import logging
import re

from django.db import DatabaseError, connection, connections, transaction

from .models import BillingLineItem

logger = logging.getLogger(__name__)

PARENT = BillingLineItem._meta.db_table
ROWS_PER_IMPORT = 1 << 32  # row numbers of one import (ids of the next import start above them)
_INDEX = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON ONLY \S+ ")


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def line_item_id(import_id: int, row_number: int) -> int:
    return import_id * ROWS_PER_IMPORT + row_number


def name(import_id: int) -> str:
    return f"{PARENT}_i{int(import_id)}"


def _parent_indexes(cursor) -> list[tuple[str, bool]]:
    """The parent's index definitions (rewritten for a partition), each with whether it is partial."""
    cursor.execute(
        """
        SELECT pg_get_indexdef(i.indexrelid), i.indpred IS NOT NULL
        FROM pg_index i
        WHERE i.indrelid = %s::regclass AND NOT i.indisprimary
        ORDER BY i.indexrelid
        """,
        [PARENT],
    )
    return [
        (_INDEX.sub(lambda m: f"CREATE {m.group(1) or ''}INDEX ON {{table}} ", sql), partial)
        for sql, partial in cursor.fetchall()
    ]


def create(import_id: int) -> str:
    """The table an import writes its line items into, made now in the caller's transaction: the import's
    partition-to-be on PostgreSQL (attached by ``attach``), the line items themselves elsewhere."""
    if not partitioned():
        return PARENT
    table = name(import_id)
    with connection.cursor() as cursor:
        # A retried import's table went with its rolled-back transaction; one left attached would be empty
        # (a database emptied by TRUNCATE keeps its partitions).
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        if cursor.fetchone()[0]:
            cursor.execute(f"DROP TABLE {table}")
        _make(cursor, table, import_id)
        _partial_indexes(cursor, table)
    return table


def _make(cursor, table: str, import_id: int) -> None:
    cursor.execute(f"CREATE TABLE {table} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    # Attaching then needs no pass over the rows to prove they belong to this import.
    cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_import CHECK (billing_import_id = {int(import_id)})")


def _partial_indexes(cursor, table: str) -> None:
    for sql, partial in _parent_indexes(cursor):
        if partial:
            cursor.execute(sql.format(table=table))


def columns() -> list[str]:
    """The line items' columns, in the table's order."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum",
            [PARENT],
        )
        return [column for (column,) in cursor.fetchall()]


def rewrite(import_id: int, select: str, params) -> None:
    """Replace an import's table (not attached yet) by the rows ``select`` reads from it, which gives every
    column in the table's order: one bulk INSERT into a fresh table rather than updates in place."""
    table = name(import_id)
    fresh = f"{table}_next"
    with connection.cursor() as cursor:
        _make(cursor, fresh, import_id)
        cursor.execute(f"INSERT INTO {fresh} ({', '.join(columns())}) {select}", params)
        cursor.execute(f"DROP TABLE {table}")
        cursor.execute(f"ALTER TABLE {fresh} RENAME TO {table}")
        _partial_indexes(cursor, table)  # built once, after the rows (they now hold allocation keys)


def attach(import_id: int) -> None:
    """Index the import's table and make it the import's partition (in the caller's transaction)."""
    if not partitioned():
        return
    table = name(import_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
            [PARENT],
        )
        for (definition,) in cursor.fetchall():
            cursor.execute(f"ALTER TABLE {table} ADD {definition}")
        for sql, partial in _parent_indexes(cursor):
            if not partial:
                cursor.execute(sql.format(table=table))
        cursor.execute(f"ALTER TABLE {PARENT} ATTACH PARTITION {table} FOR VALUES IN ({int(import_id)})")


def ensure_attached(import_ids, *, using: str = "default") -> None:
    """Attached (empty) partitions for these imports where they have none: rows loaded in bulk through the
    parent table (a restored backup) need their import's partition to exist."""
    conn = connections[using]
    if conn.vendor != "postgresql":
        return
    with conn.cursor() as cursor:
        for import_id in sorted(set(import_ids)):
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {name(import_id)} PARTITION OF {PARENT} FOR VALUES IN ({int(import_id)})"
            )


def drop_empty(lock_timeout: str = "2s") -> list[int]:
    """Drop the partitions without rows (every row replaced by later imports, or deleted); the imports whose
    partitions went. Each drop is a short transaction of its own that gives up rather than wait long
    for a busy line-item table: the next import tries again."""
    if not partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = %s::regclass AND c.relkind = 'r'
            """,
            [PARENT],
        )
        tables = [table for (table,) in cursor.fetchall() if re.fullmatch(rf"{PARENT}_i\d+", table)]
        if not tables:
            return []
        cursor.execute(" UNION ALL ".join(f"SELECT '{t}' WHERE NOT EXISTS (SELECT FROM {t})" for t in tables))
        empty = [table for (table,) in cursor.fetchall()]
    dropped = []
    for table in empty:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)", [lock_timeout]
                )
                before = cursor.fetchone()[0]
                try:
                    cursor.execute(f"LOCK TABLE {PARENT} IN ACCESS EXCLUSIVE MODE")
                    cursor.execute(f"SELECT EXISTS (SELECT FROM {table})")  # still empty, now under the lock
                    if cursor.fetchone()[0]:
                        continue
                    cursor.execute(f"DROP TABLE {table}")
                finally:
                    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [before])
        except DatabaseError as exc:  # the line items are busy (another import): the next import tries again
            logger.info("line-item partitions stay for now (%s): %s", table, str(exc).strip()[:200])
            break
        dropped.append(int(table.rsplit("_i", 1)[1]))
    return dropped
