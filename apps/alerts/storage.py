"""Bulk updates in one SQL shape PostgreSQL and SQLite (3.33+) both run: ``UPDATE ... FROM (VALUES ...)``.

Django's ``bulk_update`` builds a ``CASE WHEN pk = ... THEN ...`` expression per field and row; for the tens of
thousands of alerts an evaluation cycle can touch, building those expressions took minutes. Here each chunk is
one statement joining the table with a literal list of (pk, new values); values are prepared by the fields
themselves (``get_db_prep_save``), so they are stored exactly as the ORM would store them.
"""

from collections.abc import Iterable, Sequence

from django.db import connection, models


def _chunks(rows: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


_PLAIN = (models.IntegerField, models.FloatField, models.CharField, models.TextField, models.BooleanField)


def _preparer(field: models.Field):
    """How to turn an attribute into a database value; plain numbers and strings go as they are."""
    if isinstance(field, _PLAIN) and not isinstance(field, models.ForeignKey):
        return lambda value: value
    return lambda value: field.get_db_prep_save(value, connection)


def update_rows(model: type[models.Model], fields: list[str], objs: Sequence[models.Model]) -> int:
    """Write ``fields`` of each object (by primary key). Returns the number of rows sent."""
    if not objs:
        return 0
    meta = model._meta
    qn = connection.ops.quote_name
    table = qn(meta.db_table)
    columns = [meta.get_field(name) for name in fields]
    postgres = connection.vendor == "postgresql"
    assignments = []
    for i, field in enumerate(columns, start=2):
        value = f"v.column{i}"
        if postgres:  # literal lists are typed from their values; NULL-only columns would otherwise be text
            value = f"CAST({value} AS {field.db_type(connection)})"
        assignments.append(f"{qn(field.column)} = {value}")
    width = len(columns) + 1
    row_sql = "(" + ", ".join(["%s"] * width) + ")"
    size = 1000 if postgres else max(1, 999 // width)
    prepare = [(field.attname, _preparer(field)) for field in columns]
    with connection.cursor() as cursor:
        for chunk in _chunks(objs, size):
            params: list = []
            for obj in chunk:
                params.append(obj.pk)
                params.extend(prep(getattr(obj, attname)) for attname, prep in prepare)
            cursor.execute(
                f"UPDATE {table} SET {', '.join(assignments)} FROM (VALUES {', '.join([row_sql] * len(chunk))}) AS v "
                f"WHERE {table}.{qn(meta.pk.column)} = v.column1",
                params,
            )
    return len(objs)


def insert_rows(model: type[models.Model], fields: list[str], rows: Sequence[Sequence]) -> int:
    """Insert plain rows (values in ``fields`` order, foreign keys as ids) without building model instances."""
    if not rows:
        return 0
    meta = model._meta
    qn = connection.ops.quote_name
    columns = [meta.get_field(name) for name in fields]
    prepare = [_preparer(field) for field in columns]
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    size = 1000 if connection.vendor == "postgresql" else max(1, 999 // len(columns))
    head = f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in columns)}) VALUES "
    with connection.cursor() as cursor:
        for chunk in _chunks(rows, size):
            params = [prep(value) for row in chunk for prep, value in zip(prepare, row, strict=True)]
            cursor.execute(head + ", ".join([row_sql] * len(chunk)), params)
    return len(rows)
