"""The two hot write paths of telemetry, in SQL that PostgreSQL and SQLite both run: upserting raw points, and
rebuilding the rollups of the buckets a write touched with ``INSERT ... SELECT ... GROUP BY ... ON CONFLICT``.

Through the ORM's ``bulk_create`` most of a 10,000-point batch's time went into building model instances and
compiling SQL; here rows are plain tuples and the aggregation never leaves the database. Values go through the
connection's own adapters (``adapt_datetimefield_value``), so rows are stored exactly as the ORM stores them and
the ORM reads them back unchanged.
"""

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from django.db import connection

from .models import Point, Rollup


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def bucket_sql(grain: str, column: str) -> str:
    """SQL for the start of the UTC hour or day containing ``column`` (a timestamp)."""
    if connection.vendor == "sqlite":
        # Datetimes are stored as UTC text ("2026-11-02 10:15:00[.ffffff]"); "%%" because params follow.
        fmt = "%%Y-%%m-%%d %%H:00:00" if grain == Rollup.Grain.HOUR else "%%Y-%%m-%%d 00:00:00"
        return f"strftime('{fmt}', {column})"
    if connection.vendor == "postgresql":
        return f"date_trunc('{grain}', {column})"  # Django's sessions run in UTC
    raise NotImplementedError(f"telemetry storage supports PostgreSQL and SQLite, not {connection.vendor}")


def adapt(moment: datetime):
    return connection.ops.adapt_datetimefield_value(moment)


def upsert_points(rows: Iterable[tuple[int, datetime, float]], *, batch_size: int = 5000) -> None:
    """Insert (series id, ts, value) rows; a row whose (series, ts) exists gets the new value."""
    sql = (
        f"INSERT INTO {_table(Point)} (series_id, ts, value) VALUES (%s, %s, %s) "
        "ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value"
    )
    with connection.cursor() as cursor:
        for chunk in _chunks(((sid, adapt(ts), value) for sid, ts, value in rows), batch_size):
            cursor.executemany(sql, chunk)


def _where(windows: dict[int, tuple[datetime, datetime]]) -> tuple[str, list]:
    clauses, params = [], []
    for sid, (start, end) in windows.items():
        clauses.append("(series_id = %s AND ts >= %s AND ts < %s)")
        params += [sid, adapt(start), adapt(end)]
    return " OR ".join(clauses), params


def rebuild_rollups(grain: str, windows: dict[int, tuple[datetime, datetime]]) -> int:
    """Recompute count, sum, min and max of every ``grain`` bucket in each series' [start, end) window."""
    if not windows:
        return 0
    where, params = _where(windows)
    bucket = bucket_sql(grain, "ts")
    sql = (
        f"INSERT INTO {_table(Rollup)} (series_id, grain, bucket_start, count, sum, min, max) "
        f"SELECT series_id, %s, {bucket}, COUNT(*), SUM(value), MIN(value), MAX(value) "
        f"FROM {_table(Point)} WHERE {where} GROUP BY series_id, {bucket} "
        "ON CONFLICT (series_id, grain, bucket_start) DO UPDATE SET "
        "count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [grain, *params])
        return cursor.rowcount


def bucket_values(grain: str, windows: dict[int, tuple[datetime, datetime]]) -> Iterator[tuple[int, object, list]]:
    """Each bucket's raw values, sorted: (series id, bucket as the database returns it, values)."""
    if not windows:
        return
    where, params = _where(windows)
    bucket = bucket_sql(grain, "ts")
    sql = (
        f"SELECT series_id, {bucket} AS bucket, value FROM {_table(Point)} WHERE {where} "
        "ORDER BY series_id, bucket, value"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        current, values = None, []
        while rows := cursor.fetchmany(5000):
            for sid, start, value in rows:
                if (sid, start) != current:
                    if values:
                        yield (*current, values)
                    current, values = (sid, start), []
                values.append(value)
        if values:
            yield (*current, values)


def set_percentiles(grain: str, rows: Iterable[tuple[int, object, float, float, float]]) -> None:
    """Store (series id, bucket, p50, p95, p99); ``bucket`` exactly as :func:`bucket_values` returned it."""
    sql = (
        f"UPDATE {_table(Rollup)} SET p50 = %s, p95 = %s, p99 = %s "
        "WHERE series_id = %s AND grain = %s AND bucket_start = %s"
    )
    with connection.cursor() as cursor:
        for chunk in _chunks(((p50, p95, p99, sid, grain, b) for sid, b, p50, p95, p99 in rows), 5000):
            cursor.executemany(sql, chunk)


def existing_points(windows: dict[int, tuple[datetime, datetime]]) -> dict[tuple[int, datetime], float]:
    """Stored values of each series within its [first, last] window, keyed by (series id, aware UTC ts)."""
    if not windows:
        return {}
    clauses, params = [], []
    for sid, (first, last) in windows.items():
        clauses.append("(series_id = %s AND ts >= %s AND ts <= %s)")
        params += [sid, adapt(first), adapt(last)]
    found = {}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT series_id, ts, value FROM {_table(Point)} WHERE {' OR '.join(clauses)}", params)
        for sid, ts, value in cursor.fetchall():
            if isinstance(ts, str):
                ts = datetime.fromisoformat(ts)
            found[(sid, ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC))] = value
    return found


def _chunks(rows: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
