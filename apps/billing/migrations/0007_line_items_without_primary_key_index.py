"""On PostgreSQL, the partitioned line items keep no primary key index.

A line item's id is unique by construction (its import's id times 2**32 plus its row number, see
``apps/billing/partitions.py``) and nothing reads line items by id: they are read, replaced and
re-allocated by import, source and billing period. The index on (id, billing_import_id) that the
partitioned table's primary key needed cost every import a pass over its rows to build (0.4 s a million
rows) and about 30 bytes a row. The model does not change; other databases keep their key.
"""

from django.db import migrations

TABLE = "billing_billinglineitem"


def _partitioned(cursor) -> bool:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE])
    return cursor.fetchone()[0] == "p"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if _partitioned(cursor):
            cursor.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {TABLE}_pkey")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if _partitioned(cursor):
            cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, billing_import_id)")


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_reallocation")]

    operations = [migrations.RunPython(forwards, backwards)]
