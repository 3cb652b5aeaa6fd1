"""On PostgreSQL each import's line items are a partition of their own, written and attached in the import's
transaction: every path makes one, a rejected file leaves none, and one emptied by a restatement or a
deletion goes away."""

import csv
import logging
from pathlib import Path

import psycopg2
import pytest
from django.core.management import call_command
from django.db import connection

from apps.billing import arrowpath, fastpath, partitions
from apps.billing.models import BillingImport, BillingLineItem, BillingSource
from apps.billing.services import billing_import_path

from .test_import_fastpath import taken

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="line items are partitioned on PostgreSQL only"),
]

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "focus-1.0_sample_1000.csv"
PARENT = BillingLineItem._meta.db_table


@pytest.fixture(autouse=True)
def _no_leftovers():
    """Earlier tests' partitions, emptied when the database was emptied between tests (TRUNCATE keeps them)."""
    partitions.drop_empty()


def _query(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _partitions() -> dict[str, int]:
    """Attached partitions and their rows."""
    names = [
        name
        for (name,) in _query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass AND c.relkind = 'r'",
            [PARENT],
        )
    ]
    return {name: _query(f"SELECT count(*) FROM {name}")[0][0] for name in names}


def _exists(table: str) -> bool:
    return _query("SELECT to_regclass(%s) IS NOT NULL", [table])[0][0]


def _sample(path: Path, keep=lambda row: True) -> Path:
    with open(SAMPLE, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [row for row in reader if keep(dict(zip(header, row, strict=True)))]
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("path_taken", ["arrow", "sql", "reader"])
def test_every_path_writes_the_import_its_own_indexed_partition(path_taken, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="apps.billing")
    if path_taken != "arrow":
        monkeypatch.setattr(arrowpath, "applies", lambda reader: False)
    if path_taken == "reader":
        monkeypatch.setattr(fastpath, "applies", lambda reader: False)
    imported = billing_import_path(source=BillingSource.objects.create(name="one"), path=str(SAMPLE))
    by_copy = any("by COPY" in record.getMessage() for record in caplog.records)
    assert (taken(caplog) if by_copy else "reader") == path_taken
    table = partitions.name(imported.pk)
    assert _partitions() == {table: 1000}
    # Each of the parent's indexes has its counterpart in the partition.
    parent_indexes = _query("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass", [PARENT])
    attached = _query(
        "SELECT p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_index x ON x.indexrelid = c.oid "
        "WHERE x.indrelid = %s::regclass",
        [table],
    )
    # (source, billing period) and the four partial allocation-key indexes; no primary key index (0007).
    assert sorted(attached) == sorted(parent_indexes) and len(parent_indexes) == 5
    assert not _query("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", [table])
    # Ids, unique without an index: the import's id times 2**32 plus the row number, on every row.
    ids = list(BillingLineItem.objects.filter(billing_import=imported).values_list("id", "row_number"))
    assert len(ids) == 1000 and all(i == imported.pk * 2**32 + row for i, row in ids)
    assert sorted(row for _, row in ids) == list(range(2, 1002))


def test_a_rejected_file_leaves_no_table_and_the_earlier_partition_as_it_was(tmp_path):
    source = BillingSource.objects.create(name="kept")
    first = billing_import_path(source=source, path=str(SAMPLE))
    bad = tmp_path / "bad.csv"
    text = SAMPLE.read_text().splitlines()
    header = next(csv.reader([text[0]]))
    last = next(csv.reader([text[-1]]))
    last[header.index("BilledCost")] = "twelve"
    with open(bad, "w", newline="") as out:
        out.write("\n".join(text[:-1]) + "\n")
        csv.writer(out).writerow(last)
    rejected = billing_import_path(source=source, path=str(bad))
    assert rejected.status == BillingImport.Status.FAILED and "BilledCost" in rejected.error
    assert not _exists(partitions.name(rejected.pk))
    assert _partitions() == {partitions.name(first.pk): 1000}


def test_a_partition_goes_once_later_imports_restated_every_row_of_it(tmp_path):
    source = BillingSource.objects.create(name="restated")
    first = billing_import_path(source=source, path=str(SAMPLE))  # September (999 rows) and October (1)
    september = _sample(tmp_path / "sep.csv", lambda row: row["BillingPeriodStart"].startswith("2024-09"))
    second = billing_import_path(source=source, path=str(september))
    assert second.rows_replaced == 999
    assert _partitions() == {partitions.name(first.pk): 1, partitions.name(second.pk): 999}
    october = _sample(tmp_path / "oct.csv", lambda row: row["BillingPeriodStart"].startswith("2024-10"))
    third = billing_import_path(source=source, path=str(october))
    assert third.rows_replaced == 1
    assert _partitions() == {partitions.name(second.pk): 999, partitions.name(third.pk): 1}
    assert not _exists(partitions.name(first.pk))
    assert BillingLineItem.objects.filter(source=source).count() == 1000


def test_deleting_an_import_or_its_source_drops_its_partition():
    source = BillingSource.objects.create(name="deleted")
    first = billing_import_path(source=source, path=str(SAMPLE))
    other = billing_import_path(source=BillingSource.objects.create(name="other"), path=str(SAMPLE))
    BillingImport.objects.get(pk=first.pk).delete()
    assert _partitions() == {partitions.name(other.pk): 1000}
    again = billing_import_path(source=source, path=str(SAMPLE))
    assert _partitions() == {partitions.name(other.pk): 1000, partitions.name(again.pk): 1000}
    source.delete()
    assert _partitions() == {partitions.name(other.pk): 1000}


def test_an_empty_partition_waits_while_the_line_items_are_busy(settings):
    source = BillingSource.objects.create(name="busy")
    imported = billing_import_path(source=source, path=str(SAMPLE))
    BillingLineItem.objects.filter(billing_import=imported).delete()  # emptied, but not through a deletion
    table = partitions.name(imported.pk)
    params = connection.get_connection_params()
    reader = psycopg2.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})
    try:
        with reader.cursor() as cursor:  # another session reading the line items, in a long transaction
            cursor.execute(f"SELECT count(*) FROM {PARENT}")
            assert partitions.drop_empty(lock_timeout="100ms") == []
        assert _exists(table)
        reader.rollback()
        assert partitions.drop_empty() == [imported.pk]
        assert not _exists(table)
    finally:
        reader.close()


def test_the_migration_moves_stored_line_items_into_their_imports_partitions():
    source = BillingSource.objects.create(name="migrated")
    imports = [billing_import_path(source=source, path=str(SAMPLE)) for _ in range(2)]
    totals = _query(f"SELECT count(*), sum(billed_cost), sum(effective_cost) FROM {PARENT}")
    try:
        call_command("migrate", "billing", "0003", verbosity=0)
        assert _query("SELECT relkind FROM pg_class WHERE relname = %s", [PARENT]) == [("r",)]
        assert _query(f"SELECT count(*), sum(billed_cost), sum(effective_cost) FROM {PARENT}") == totals
    finally:
        call_command("migrate", "billing", verbosity=0)
    assert _query("SELECT relkind FROM pg_class WHERE relname = %s", [PARENT]) == [("p",)]
    assert _partitions() == {partitions.name(imports[1].pk): 1000}
    assert _query(f"SELECT count(*), sum(billed_cost), sum(effective_cost) FROM {PARENT}") == totals
    # Imports go on as before in the migrated table.
    third = billing_import_path(source=source, path=str(SAMPLE))
    assert _partitions() == {partitions.name(third.pk): 1000}


def test_imports_of_two_sources_at_once_both_attach_their_partitions(tmp_path):
    """Attaching takes a lock that two imports cannot hold at once: the second waits for the first to commit,
    and neither fails."""
    import threading

    from django.db import connections

    big = tmp_path / "big.csv"
    text = SAMPLE.read_text().splitlines()
    big.write_text("\n".join([text[0], *(text[1:] * 20)]) + "\n")  # 20,000 rows: long enough to overlap
    sources = [BillingSource.objects.create(name=f"at-once-{n}") for n in range(2)]
    results, errors = {}, []
    start = threading.Barrier(2)

    def run(source):
        try:
            start.wait()
            results[source.pk] = billing_import_path(source=source, path=str(big))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(source,)) for source in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    imports = [results[source.pk] for source in sources]
    assert [i.status for i in imports] == [BillingImport.Status.SUCCEEDED] * 2
    assert _partitions() == {partitions.name(i.pk): 20_000 for i in imports}
    for source in sources:
        assert BillingLineItem.objects.filter(source=source).count() == 20_000
