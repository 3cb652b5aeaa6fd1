"""PostgreSQL's bulk paths (Arrow + COPY, and COPY + SQL) and the row-by-row reader give the same rows, totals,
findings and errors.

Each file is imported twice into two sources: once as the importer chooses (Arrow for FOCUS CSV on PostgreSQL,
then the SQL path for a file Arrow declines), once with both bulk paths switched off. Everything a user can
see must be equal; each test also says which path should have taken its file.
"""

import csv
import gzip
import io
import itertools
import json
import logging
from pathlib import Path

import pytest
from django.db import connection

from apps.billing import arrowpath, fastpath
from apps.billing.models import BillingImport, BillingLineItem, BillingSource, CostRollup
from apps.billing.services import billing_import_path

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the bulk path is PostgreSQL's (COPY)"),
]

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "focus-1.0_sample_1000.csv"
IMPORT_FIELDS = (
    "status",
    "format",
    "focus_version",
    "currency",
    "periods",
    "rows_read",
    "rows_imported",
    "rows_rejected",
    "billed_total",
    "effective_total",
    "error",
    "errors",
    "warnings",
)
DECLINED = "read row by row"


def taken(caplog) -> str:
    """Which path imported the last file: "arrow", "sql" or "reader"."""
    messages = [r.getMessage() for r in caplog.records]
    if any(DECLINED in m for m in messages):
        return "reader"
    if any("checked in SQL" in m for m in messages):  # Arrow gave the file back, even after reading it all
        return "sql"
    return "arrow" if any("by COPY from Arrow" in m for m in messages) else "sql"


@pytest.fixture
def sql_only(monkeypatch):
    """The SQL bulk path alone (Arrow switched off), for what only it does: parts checked at once."""
    monkeypatch.setattr(arrowpath, "applies", lambda reader: False)


def _line_items(billing_import: BillingImport) -> list[tuple]:
    columns = [
        f.column
        for f in BillingLineItem._meta.concrete_fields
        if f.column not in ("id", "source_id", "billing_import_id")
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM billing_billinglineitem "
            "WHERE billing_import_id = %s ORDER BY row_number",
            [billing_import.pk],
        )
        return cursor.fetchall()


def _rollups(source: BillingSource) -> list[tuple]:
    return sorted(
        CostRollup.objects.filter(source=source).values_list(
            "day",
            "provider",
            "sub_account_id",
            "region",
            "charge_category",
            "currency",
            "billed_cost",
            "effective_cost",
            "line_items",
        )
    )


def _import_both(path: Path, monkeypatch, caplog) -> tuple[BillingImport, BillingImport, str]:
    """The file imported by the importer's choice and by the reader alone; and which path took it."""
    caplog.set_level(logging.INFO, logger="apps.billing")
    caplog.clear()
    bulk_source = BillingSource.objects.create(name=f"bulk-{path.name}")
    bulk = billing_import_path(source=bulk_source, path=str(path))
    path_taken = taken(caplog)
    with monkeypatch.context() as patch:
        patch.setattr(fastpath, "applies", lambda reader: False)
        reader_source = BillingSource.objects.create(name=f"reader-{path.name}")
        portable = billing_import_path(source=reader_source, path=str(path))
    for field in IMPORT_FIELDS:
        assert getattr(bulk, field) == getattr(portable, field), field
    assert _line_items(bulk) == _line_items(portable)
    assert _rollups(bulk_source) == _rollups(reader_source)
    return bulk, portable, path_taken


def scratch_tables() -> list[str]:
    """The bulk path's work tables in the database (none on SQLite)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE %s ORDER BY 1",
            [fastpath.SCRATCH_PREFIX.replace("_", r"\_") + "%"],
        )
        return [name for (name,) in cursor.fetchall()]


def _rows() -> tuple[list[str], list[list[str]]]:
    with open(SAMPLE, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, list(reader)


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def test_the_sample_goes_in_by_copy_with_the_readers_rows_totals_and_findings(tmp_path, monkeypatch, caplog):
    bulk, _, path = _import_both(SAMPLE, monkeypatch, caplog)
    assert path == "arrow", "the FOCUS sample should need neither the SQL path nor the row-by-row reader"
    assert bulk.status == BillingImport.Status.SUCCEEDED and bulk.rows_imported == 1000
    assert {w["rule"] for w in bulk.warnings} >= {"null-literal", "datetime-format", "list-cost", "tag-key-whitespace"}


def test_gzip_with_a_bom_and_crlf_lines_is_read_alike(tmp_path, monkeypatch, caplog):
    text = SAMPLE.read_text(encoding="utf-8").replace("\n", "\r\n")
    path = tmp_path / "sample-bom.csv.gz"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf" + text.encode("utf-8")))
    _, _, taken_by = _import_both(path, monkeypatch, caplog)
    assert taken_by == "arrow"


def test_quirky_cells_are_normalised_and_reported_alike(tmp_path, monkeypatch, caplog):
    header, rows = _rows()
    col = {name: i for i, name in enumerate(header)}
    rows = [list(r) for r in rows[:60]]
    rows[0][col["ChargeFrequency"]] = "usage-based"  # enumeration casing
    rows[1][col["ChargeCategory"]] = "Something"  # outside the enumeration
    rows[2][col["RegionName"]] = "Unassigned"  # a placeholder
    rows[3][col["ResourceName"]] = "   "  # whitespace for null
    rows[4][col["Tags"]] = '"team": "a", " env": "prod"'  # no braces, a key with spaces
    rows[5][col["Tags"]] = "{not json"
    rows[6][col["Tags"]] = '{"a": 1, "a": {"b": null}}'  # duplicate key, nested value
    rows[7][col["BilledCost"]] = "1.5E-7"
    rows[8][col["ListCost"]] = "-2"
    rows[9][col["ChargePeriodStart"]] = "2024-09-18T22:00:00Z"
    rows[10][col["ChargePeriodEnd"]] = "2024-09-18 21:00:00"  # before its start
    rows[11][col["ChargeCategory"]] = "Credit"
    rows[12][col["Id"]] = "NULL"
    rows[13][col["ServiceCategory"]] = "storage"
    rows[14][col["ChargePeriodStart"]] = "2024-09-18T22:00:00.250Z"  # other ISO 8601 forms of UTC
    rows[15][col["ChargePeriodEnd"]] = "2024-09-19T00:00"
    rows[16][col["BillingPeriodEnd"]] = "2024-10-01"
    rows[17][col["ListCost"]] = " "  # whitespace for a null amount
    rows[18][col["ContractedCost"]] = "NULL"
    _, _, path = _import_both(_write(tmp_path / "quirks.csv", header, rows), monkeypatch, caplog)
    assert path == "sql"  # exponents and other ISO 8601 forms: Arrow leaves them to the SQL path


def test_quirks_arrow_reads_itself_are_normalised_and_reported_alike(tmp_path, monkeypatch, caplog):
    """Every cell here has a form Arrow reads (no exponent, the two usual date/time forms): it keeps the file,
    and its rows, findings and examples are the reader's."""
    header, rows = _rows()
    col = {name: i for i, name in enumerate(header)}
    rows = [list(r) for r in rows[:80]]
    rows[0][col["ChargeFrequency"]] = "usage-based"  # enumeration casing
    rows[1][col["ChargeCategory"]] = "Something"  # outside the enumeration
    rows[2][col["RegionName"]] = "Unassigned"  # placeholders
    rows[3][col["SubAccountName"]] = "-2"
    rows[4][col["ResourceName"]] = "   "  # whitespace for null, ASCII and not
    rows[5][col["ResourceType"]] = "\u00a0\u2003"
    rows[6][col["Tags"]] = '"team": "a", " env": "prod"'  # no braces, a key with spaces
    rows[7][col["Tags"]] = '{"a": 1, "a": {"b": null}, "ü": "\\u00e9"}'  # duplicate key, nested, escapes
    rows[8][col["BilledCost"]] = "+1.50"  # plain decimals in every form the reader takes
    rows[9][col["EffectiveCost"]] = ".5"
    rows[10][col["ListCost"]] = "5."
    rows[11][col["ListCost"]] = "-2"
    rows[12][col["ChargePeriodEnd"]] = "2024-09-18 21:00:00"  # before its start, without T and Z
    rows[13][col["ChargeCategory"]] = "Credit"
    rows[14][col["Id"]] = "NULL"
    rows[15][col["ServiceCategory"]] = "storage"
    rows[16][col["ServiceCategory"]] = "Compute"  # a second category for a service seen before
    rows[17][col["ChargeCategory"]] = "Tax"
    rows[18][col["ChargeDescription"]] = 'tab\there, back\\slash, "quotes" and\na line feed'  # COPY escapes
    rows[19][col["AvailabilityZone"]] = 'zone "b" \\ east'  # JSON escapes in extra
    rows[20][col["Id"]] = "naïve \u4e2d"
    rows[21][col["ContractedCost"]] = "NULL"
    rows[22][col["PricingQuantity"]] = ""
    rows[23][col["BillingPeriodEnd"]] = "2024-09-15T00:00:00Z"  # a charge outside its billing period
    rows[24][col["CommitmentDiscountStatus"]] = "used"
    # Differences of exactly 0.000001, which floats put a hair above it: decided with Decimal, as the reader.
    rows[25][col["ListCost"]], rows[25][col["ListUnitPrice"]], rows[25][col["PricingQuantity"]] = (
        "0.0000030000000000",
        "0.0000010000000000",
        "2.0000000000",
    )
    rows[26][col["ChargeCategory"]] = "Credit"
    rows[26][col["BilledCost"]], rows[26][col["EffectiveCost"]] = "-0.000003000000", "-0.000002000000"
    _, _, path = _import_both(_write(tmp_path / "quirks-arrow.csv", header, rows), monkeypatch, caplog)
    assert path == "arrow"


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("BilledCost", "1.5E-7"),  # an exponent
        ("ChargePeriodStart", "2024-09-18T22:00:00.250Z"),  # other ISO 8601 forms of UTC
        ("ChargeCategory", "Us\u0430ge"),  # not ASCII: might fold to an allowed value
    ],
)
def test_a_cell_arrow_leaves_to_the_sql_path_late_in_the_file_changes_nothing(
    tmp_path, monkeypatch, caplog, column, value
):
    """Arrow has written thousands of rows by COPY when it meets the cell: they are rolled back with its
    savepoint, and the SQL path imports the file as the reader does."""
    header, rows = _rows()
    rows = [list(r) for r in rows * 15]  # three blocks
    rows[-2][header.index(column)] = value
    bulk, _, path = _import_both(_write(tmp_path / "late-quirk.csv", header, rows), monkeypatch, caplog)
    assert path == "sql"
    assert bulk.status == BillingImport.Status.SUCCEEDED and bulk.rows_imported == 15_000
    assert any("checked in SQL" in r.getMessage() for r in caplog.records)


def test_a_cell_arrow_leaves_in_its_first_block_gives_the_whole_file_to_the_sql_path(tmp_path, monkeypatch, caplog):
    """Arrow's threads have read blocks ahead when it gives the file back: they stop reading it, and the SQL
    path, reading the same open file from its start, gets every row."""
    header, rows = _rows()
    rows = [list(r) for r in rows * 25]  # five blocks
    rows[3][header.index("BilledCost")] = "1.5E-7"
    bulk, _, path = _import_both(_write(tmp_path / "early-quirk.csv", header, rows), monkeypatch, caplog)
    assert path == "sql"
    assert bulk.status == BillingImport.Status.SUCCEEDED and bulk.rows_imported == 25_000


def test_columns_of_later_versions_and_custom_columns_are_read_alike(tmp_path, monkeypatch, caplog):
    header, rows = _rows()
    header = [*header, "InvoiceId", "SkuPriceDetails", "x_Team", "Note"]
    extra = [["INV-1", '{"x_tier": "a"}', "ml", "first"], ["", "NULL", "", "-2"], ["INV-2", "[1]", "web", "Unassigned"]]
    rows = [[*r, *extra[n % 3]] for n, r in enumerate(rows[:90])]
    bulk, _, path = _import_both(_write(tmp_path / "focus-1.2.csv", header, rows), monkeypatch, caplog)
    assert path == "sql" and bulk.focus_version == "1.2"  # SkuPriceDetails goes to extra as JSON: the SQL path


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("BilledCost", "12,50 USD"),
        ("BilledCost", "NaN"),
        ("EffectiveCost", ""),
        ("ListCost", "1e1000"),
        ("ChargePeriodStart", "31/09/2024"),
        ("ChargePeriodStart", "2024-02-30T00:00:00Z"),
        ("BillingPeriodEnd", "2024-10-01T24:00:00Z"),
        ("BillingCurrency", "EUR"),
        ("BillingCurrency", "NULL"),
        ("BilledCost", "123456789012345678901.5"),  # read by Arrow, refused by the database's numeric(38, 18)
    ],
)
def test_a_bad_cell_gives_the_readers_error(tmp_path, monkeypatch, caplog, column, value):
    header, rows = _rows()
    rows = [list(r) for r in rows[:40]]
    rows[17][header.index(column)] = value
    bulk, _, _ = _import_both(_write(tmp_path / "bad.csv", header, rows), monkeypatch, caplog)
    assert bulk.status == BillingImport.Status.FAILED
    assert bulk.errors[0]["row"] == 19 and bulk.errors[0]["column"] == column, bulk.errors
    assert not BillingLineItem.objects.exists()


def test_a_short_record_and_a_header_without_rows_give_the_readers_error(tmp_path, monkeypatch, caplog):
    header, _ = _rows()
    lines = SAMPLE.read_text().splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join([*lines[:10], "1,2,3", *lines[10:20]]) + "\n")
    bulk, _, _ = _import_both(short, monkeypatch, caplog)
    assert bulk.status == BillingImport.Status.FAILED and bulk.errors[0]["row"] == 11
    bulk, _, _ = _import_both(_write(tmp_path / "header-only.csv", header, []), monkeypatch, caplog)
    assert "no data rows" in bulk.error


def test_reimporting_by_copy_replaces_the_period_and_changes_nothing(tmp_path):
    source = BillingSource.objects.create(name="twice")
    first = billing_import_path(source=source, path=str(SAMPLE))
    rollups = _rollups(source)
    second = billing_import_path(source=source, path=str(SAMPLE))
    assert second.rows_replaced == first.rows_imported == 1000
    assert BillingLineItem.objects.filter(source=source).count() == 1000
    assert _rollups(source) == rollups


def test_progress_is_reported_while_the_file_goes_in_by_copy(tmp_path):
    header, rows = _rows()
    path = _write(tmp_path / "long.csv", header, rows * 60)  # 60,000 rows: progress is reported along the way
    seen: list[tuple[int, float | None]] = []
    result = billing_import_path(
        source=BillingSource.objects.create(name="progress"),
        path=str(path),
        on_progress=lambda rows, fraction: seen.append((rows, fraction)),
    )
    assert result.status == BillingImport.Status.SUCCEEDED and result.rows_imported == 60_000
    fractions = [fraction for _, fraction in seen]
    assert fractions == sorted(fractions) and 0 < fractions[0] < fractions[-1] and fractions[-1] >= 0.9
    assert seen[-1][0] == 60_000


@pytest.mark.parametrize(("bulk_path", "parts"), [("arrow", None), ("sql", 1), ("sql", 3)])
def test_findings_that_only_show_near_the_end_of_a_long_file_are_reported_alike(
    tmp_path, monkeypatch, caplog, settings, bulk_path, parts
):
    if bulk_path == "sql":  # the file is checked in this many parts at once: the same result
        monkeypatch.setattr(arrowpath, "applies", lambda reader: False)
        settings.BILLING_IMPORT_PARTS = parts
    header, rows = _rows()
    rows = [list(r) for r in rows * 40]  # 40,000 rows: the examples are first looked for in the first rows
    rows[-1][header.index("RegionName")] = "Unassigned"
    rows[-3][header.index("RegionName")] = "Not Applicable"
    bulk, _, path = _import_both(_write(tmp_path / "late.csv", header, rows), monkeypatch, caplog)
    assert path == bulk_path  # Arrow: in several blocks of the file, the first examples in the last one
    placeholder = next(w for w in bulk.warnings if w["rule"] == "placeholder")
    assert [e["row"] for e in placeholder["examples"]] == [39999, 40001]


def test_work_tables_are_dropped_after_an_import_and_a_declined_file(tmp_path, monkeypatch, caplog):
    header, rows = _rows()
    assert billing_import_path(source=BillingSource.objects.create(name="clean"), path=str(SAMPLE)).rows_imported
    assert scratch_tables() == []
    rows = [list(r) for r in rows]
    rows[5][header.index("BilledCost")] = "NaN"  # the reader judges it: the bulk path gives the file back
    _, _, path = _import_both(_write(tmp_path / "nan.csv", header, rows), monkeypatch, caplog)
    assert path == "reader"
    assert scratch_tables() == []


def test_work_tables_of_a_killed_import_are_dropped_by_the_next_one_and_a_running_ones_kept():
    source = BillingSource.objects.create(name="janitor")
    killed = BillingImport.objects.create(source=source, filename="a.csv", status=BillingImport.Status.FAILED)
    running = BillingImport.objects.create(source=source, filename="b.csv", status=BillingImport.Status.RUNNING)
    with connection.cursor() as cursor:
        for owner in (killed, running):
            cursor.execute(f"CREATE UNLOGGED TABLE {fastpath.SCRATCH_PREFIX}{owner.pk}_0a1b2c_stage (c0 text)")
    billing_import_path(source=source, path=str(SAMPLE))
    assert scratch_tables() == [f"{fastpath.SCRATCH_PREFIX}{running.pk}_0a1b2c_stage"]


def test_a_plain_file_is_cut_at_record_ends_only(tmp_path):
    """Cuts fall after a record's end, never inside a quoted field that holds line feeds or quotes."""
    text = "a,b\n" + "".join(f'{i},"x\n""y""\n{i}"\n' if i % 3 else f"{i},plain\n" for i in range(3000))
    path = tmp_path / "quoted.csv"
    path.write_bytes(text.encode())
    whole = list(csv.reader(io.StringIO(text)))
    for parts in (2, 3, 7):
        cuts = fastpath._cuts(str(path), parts)
        assert cuts[0] == 0 and cuts[-1] == len(text.encode()) and cuts == sorted(set(cuts))
        assert len(cuts) == parts + 1
        pieces = [text.encode()[a:b].decode() for a, b in itertools.pairwise(cuts)]
        assert [row for piece in pieces for row in csv.reader(io.StringIO(piece))] == whole


@pytest.mark.parametrize("bulk_path", ["arrow", "sql"])
def test_records_with_line_feeds_in_quoted_cells_are_read_alike_in_parts(
    tmp_path, monkeypatch, caplog, settings, bulk_path
):
    if bulk_path == "sql":
        monkeypatch.setattr(arrowpath, "applies", lambda reader: False)
        settings.BILLING_IMPORT_PARTS = 3
    header, rows = _rows()
    rows = [list(r) for r in rows * 3]
    description = header.index("ChargeDescription")
    for n, row in enumerate(rows):
        if n % 2:
            row[description] = f'{row[description]}\nsecond line with "quotes", and a comma\n'
    bulk, _, path = _import_both(_write(tmp_path / "multiline.csv", header, rows), monkeypatch, caplog)
    assert path == bulk_path and bulk.rows_imported == 3000


@pytest.mark.parametrize("ending", ["\\.\n", "\\.\r\n", "\\."])
def test_a_line_holding_only_copys_end_of_data_marker_loses_no_rows(tmp_path, monkeypatch, caplog, ending):
    """COPY would stop at such a line and drop the records after it: the file goes to the reader, which
    rejects the short record by its row number, whichever part of the file holds it."""
    header, rows = _rows()
    path = _write(tmp_path / "marker.csv", header, rows)
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    for where in (len(lines) // 3, len(lines)):
        marked = "".join(lines[:where]) + ending + "".join(lines[where:])
        if where < len(lines) and not ending.endswith("\n"):
            continue
        marked_path = tmp_path / f"marker-{where}.csv"
        marked_path.write_text(marked)
        caplog.clear()
        bulk, _, path = _import_both(marked_path, monkeypatch, caplog)
        assert path == "reader"
        assert bulk.status == BillingImport.Status.FAILED
        assert f"row {where + 1}: has 1 fields" in bulk.error


def test_arrow_leaves_the_file_to_the_sql_path_when_the_cache_shares_the_database(settings):
    """Its COPY holds the import's connection while progress goes to the cache: a cache in the same database
    could not be written meanwhile."""
    from apps.billing.formats import BillingFileReader

    with open(SAMPLE, "rb") as raw:
        reader = BillingFileReader(raw, fmt=None, filename=SAMPLE.name)
        assert arrowpath.applies(reader) and fastpath.applies(reader)
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "t"}}
        assert not arrowpath.applies(reader) and fastpath.applies(reader)


ROLLUP_FIELDS = [f.name for f in CostRollup._meta.concrete_fields if f.name not in ("id", "source")]


def _all_rollups(source: BillingSource) -> list[tuple]:
    return sorted(CostRollup.objects.filter(source=source).values_list(*ROLLUP_FIELDS), key=repr)


def _import_summed_both_ways(path: Path, monkeypatch, caplog) -> tuple[list[tuple], list[tuple], list[str]]:
    """The file's rollups summed by the Arrow path as it reads, and summed by the database from the rows;
    and what the first import logged."""
    caplog.set_level(logging.INFO, logger="apps.billing")
    caplog.clear()
    as_read = BillingSource.objects.create(name="summed-as-read")
    assert billing_import_path(source=as_read, path=str(path)).status == BillingImport.Status.SUCCEEDED
    logged = [r.getMessage() for r in caplog.records]
    with monkeypatch.context() as patch:
        patch.setattr(arrowpath, "_merged_groups", lambda state: None)  # the database's own sums
        from_rows = BillingSource.objects.create(name="summed-from-rows")
        assert billing_import_path(source=from_rows, path=str(path)).status == BillingImport.Status.SUCCEEDED
    return _all_rollups(as_read), _all_rollups(from_rows), logged


def test_rollups_summed_as_the_file_is_read_equal_the_databases_sums_with_rules_and_locations(
    tmp_path, monkeypatch, caplog
):
    """Every rollup field (day, service, environment, location, shared spread, amounts, row counts) is the
    same whether the Arrow path summed the rows as it read them or the database summed the stored rows."""
    from apps.catalog.models import Location
    from tests.factories import EnvironmentFactory, ServiceFactory

    from .test_unit_cost import save_rule

    header, rows = _rows()
    col = {name: i for i, name in enumerate(header)}
    for n, row in enumerate(rows[:300]):  # some rows name a store in their tags
        row[col["Tags"]] = json.dumps({"store": "s0042" if n % 2 else "s0007", "application": f"app{n % 3}"})
    apps = sorted(
        {json.loads(r[col["Tags"]]).get("application", "") for r in rows[300:] if r[col["Tags"]] not in ("", "NULL")}
        - {""}
    )
    shop, vision = ServiceFactory(slug="shop", name="Shop"), ServiceFactory(slug="vision", name="Vision")
    EnvironmentFactory(slug="dev", name="Development")
    EnvironmentFactory(slug="prod", name="Production")
    Location.objects.create(code="s0042", name="Store 42", kind="store")
    Location.objects.create(code="s0007", name="Store 7", kind="store")
    save_rule(name="a", order=1, match="tag", tag_key="application", value=apps[0], service=shop)
    save_rule(name="b", order=2, match="tag", tag_key="application", value="app1", service=vision)
    save_rule(
        name="shared", order=3, match="sub_account", value=rows[400][col["SubAccountId"]], shared=True, spread="even"
    )
    save_rule(name="sqs", order=4, match="service_name", value="amazon simple queue service", service=vision)
    as_read, from_rows, logged = _import_summed_both_ways(
        _write(tmp_path / "rules.csv", header, rows), monkeypatch, caplog
    )
    assert any("allocated as written, rolled up as read" in m for m in logged)
    assert as_read == from_rows
    # The rules and locations did their work: services, a shared spread and both stores are in the sums.
    fields = {name: i for i, name in enumerate(ROLLUP_FIELDS)}
    assert {r[fields["service"]] for r in as_read} >= {shop.pk, vision.pk}
    assert any(r[fields["is_shared"]] for r in as_read)
    assert len({r[fields["location"]] for r in as_read} - {None}) == 2


def test_amounts_with_more_places_than_stored_are_summed_by_the_database(tmp_path, monkeypatch, caplog):
    """The line items keep 18 decimal places: an amount with more is rounded as it is stored, so the
    Arrow path leaves the sums to the database, whose rollups then hold the stored amounts."""
    header, rows = _rows()
    col = {name: i for i, name in enumerate(header)}
    rows[5][col["BilledCost"]] = "0.0000000000000000015"  # 19 places
    as_read, from_rows, logged = _import_summed_both_ways(
        _write(tmp_path / "places.csv", header, rows), monkeypatch, caplog
    )
    assert any("by COPY from Arrow" in m for m in logged)
    assert not any("rolled up as read" in m for m in logged)
    assert as_read == from_rows


@pytest.mark.parametrize("seconds", ["00", "30"])
def test_amounts_and_times_shortened_for_copy_are_stored_as_written(tmp_path, monkeypatch, caplog, seconds):
    """The Arrow path sends amounts without their fraction's trailing zeros and times without zero seconds
    (a billing period's midnight as its date): every stored value is the reader's, including amounts that
    lose every digit of their fraction, amounts without a point, and a time with seconds in the file."""
    header, rows = _rows()
    col = {name: i for i, name in enumerate(header)}
    rows = [list(r) for r in rows[:40]]
    for n, (billed, effective) in enumerate(
        [(".000", "-.500"), ("100", "100.0"), ("-0.000", "+5."), ("0.10", "+.0"), ("12.3400", "-1.000")]
    ):
        rows[n][col["BilledCost"]], rows[n][col["EffectiveCost"]] = billed, effective
        rows[n][col["ListCost"]], rows[n][col["ContractedCost"]] = effective, billed
    rows[7][col["ChargePeriodStart"]] = f"2024-09-18 21:59:{seconds}"
    rows[8][col["ChargePeriodEnd"]] = f"2024-09-19T00:00:{seconds}Z"
    bulk, portable, path = _import_both(_write(tmp_path / "short.csv", header, rows), monkeypatch, caplog)
    assert path == "arrow"
    assert bulk.billed_total == portable.billed_total and bulk.effective_total == portable.effective_total
    stored = BillingLineItem.objects.filter(billing_import=bulk).order_by("row_number")
    assert [str(item.billed_cost.normalize()) for item in stored[:5]] == ["0", "1E+2", "0", "0.1", "12.34"]
