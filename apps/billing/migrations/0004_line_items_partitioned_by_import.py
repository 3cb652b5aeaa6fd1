"""On PostgreSQL, line items become a table partitioned by import: one partition per import (see
``apps/billing/partitions.py``). The rows already stored move into their imports' partitions. The model
does not change; other databases keep one table."""

from django.db import migrations

TABLE = "billing_billinglineitem"
OLD = "billing_billinglineitem_unpartitioned"


def _indexes(cursor, table: str) -> list[tuple[str, str]]:
    cursor.execute(
        """
        SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = %s::regclass AND NOT i.indisprimary ORDER BY c.relname
        """,
        [table],
    )
    return cursor.fetchall()


def _rebuild(cursor, *, partitioned: bool) -> None:
    """Copy the line items into a new table (partitioned or not) with the same columns, indexes and rows."""
    cursor.execute("SET LOCAL client_min_messages = warning")
    cursor.execute(f"SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '{TABLE}'::regclass AND contype = 'p'")
    indexes = _indexes(cursor, TABLE)
    cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
    cursor.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT {TABLE}_pkey TO {OLD}_pkey")
    for index, _ in indexes:
        cursor.execute(f"ALTER INDEX {index} RENAME TO {index}_old")
    how = " PARTITION BY LIST (billing_import_id)" if partitioned else ""
    cursor.execute(f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS){how}")
    key = "id, billing_import_id" if partitioned else "id"
    cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY ({key})")
    for _, definition in indexes:  # read before the renames: they name the new table and free names
        cursor.execute(definition.replace(" ON ONLY ", " ON "))
    if partitioned:
        cursor.execute(f"SELECT DISTINCT billing_import_id FROM {OLD} ORDER BY 1")
        for (import_id,) in cursor.fetchall():
            cursor.execute(f"CREATE TABLE {TABLE}_i{import_id} PARTITION OF {TABLE} FOR VALUES IN ({import_id})")
    cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {OLD}")
    cursor.execute(f"DROP TABLE {OLD}")
    # The identity sequence goes on from the largest id stored.
    cursor.execute(
        f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), coalesce(max(id), 0) + 1, false) FROM {TABLE}"
    )


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE])
        if cursor.fetchone()[0] == "p":
            return
        _rebuild(cursor, partitioned=True)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE])
        if cursor.fetchone()[0] != "p":
            return
        _rebuild(cursor, partitioned=False)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_line_items_without_import_index"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
