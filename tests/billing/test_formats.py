"""Billing export readers: every format to normalised FOCUS rows, conformance findings, and bad input rejected.

Pure Python (no database). Expected totals are computed here from the files' raw columns, never through
the reader.
"""

import contextlib
import csv
import gzip
import io
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.billing.formats import (
    FOCUS_COLUMNS,
    FORMATS,
    MAX_ROW_ERRORS,
    BillingFileError,
    BillingFileReader,
    NormalizedRow,
    detect_format,
    iter_rows,
    keep_from_actual_cost,
    required_columns,
)
from apps.billing.formats.base import DATETIME_COLUMNS, DECIMAL_COLUMNS, ENUMERATIONS, KEY_VALUE_COLUMNS, CellError
from apps.billing.formats.conformance import ConformanceReport
from apps.billing.formats.focus import FocusMapper
from apps.billing.formats.values import Cells, Columns, parse_datetime, parse_decimal

from . import fixtures_gen as gen

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "focus-1.0_sample_1000.csv"
JANUARY = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))
FEBRUARY = (datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))


def read(source, fmt: str | None, filename: str | None = None) -> tuple[list[NormalizedRow], BillingFileReader]:
    reader = BillingFileReader(source, fmt=fmt, filename=filename)
    return list(reader.rows()), reader


def decimal_sum(values) -> Decimal:
    return sum((Decimal(v) for v in values if v not in ("", "NULL")), Decimal(0))


def by_category(rows: list[NormalizedRow]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        totals[row.charge_category] += row.billed_cost
    return dict(totals)


def rejection(source, fmt: str | None, filename: str) -> BillingFileError:
    with pytest.raises(BillingFileError) as caught:
        list(iter_rows(source, fmt=fmt, filename=filename))
    return caught.value


# --- the shared FOCUS sample -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> tuple[list[NormalizedRow], BillingFileReader]:
    return read(SAMPLE, "focus")


@pytest.fixture(scope="module")
def sample_frame() -> pd.DataFrame:
    return pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)


def test_every_sample_row_is_read(sample):
    rows, reader = sample
    assert len(rows) == 1000
    assert [row.row for row in rows] == list(range(2, 1002))  # the header is row 1
    assert reader.format == "focus" and reader.focus_version == "1.0" and reader.currency == "USD"
    assert all(row.charge_period_start.tzinfo is UTC for row in rows)
    september, october, november = (datetime(2024, month, 1, tzinfo=UTC) for month in (9, 10, 11))
    assert reader.billing_periods == {(september, october), (october, november)}  # one Oracle row is October's


def test_sample_totals_equal_an_exact_pandas_sum(sample, sample_frame):
    rows, _ = sample
    assert sum(row.billed_cost for row in rows) == decimal_sum(sample_frame["BilledCost"])
    assert sum(row.effective_cost for row in rows) == decimal_sum(sample_frame["EffectiveCost"])
    # Every digit survives: 15-decimal quantities and amounts down to 4E-10.
    consumed = [Decimal(v) if v != "NULL" else None for v in sample_frame["ConsumedQuantity"]]
    assert [row.consumed_quantity for row in rows] == consumed
    assert min(abs(row.billed_cost) for row in rows if row.billed_cost) == Decimal("4E-10")


def test_sample_quirks_are_reported_as_warnings(sample, sample_frame):
    _, reader = sample
    report = reader.report
    assert report.rows("null-literal") == 1000
    assert report.rows("datetime-format") == 1000
    assert report.rows("empty-string") == 7  # the Oracle rows
    assert set(report.findings["empty-string"].columns) == {
        "BillingAccountName",
        "CommitmentDiscountCategory",
        "CommitmentDiscountId",
        "CommitmentDiscountName",
        "CommitmentDiscountType",
        "PricingCategory",
        "ResourceName",
        "SkuPriceId",
    }
    assert report.rows("enum-case") == 7 and set(report.findings["enum-case"].columns) == {"ChargeFrequency"}
    assert report.rows("list-cost") == 25
    assert report.rows("credit-costs") == 1
    assert report.findings["mandatory-null"].columns == {"ContractedCost": 7}
    assert set(report.findings["column-prefix"].columns) == {"Id"}
    assert report.rows("tag-key-whitespace") > 0
    outside = sample_frame.index[sample_frame["ChargePeriodStart"] < sample_frame["BillingPeriodStart"]]
    assert [e.row for e in report.findings["charge-outside-billing-period"].examples] == [i + 2 for i in outside]
    assert {f["rule"] for f in report.as_list()} == set(report.findings)


def test_sample_values_are_normalised(sample):
    rows, _ = sample
    assert {row.charge_frequency for row in rows} == {"Usage-Based", "One-Time"}
    tagged = [row.tags for row in rows if row.tags]
    assert len(tagged) == 711
    assert not any(key != key.strip() for tags in tagged for key in tags)
    assert rows[0].extras == {"Id": "11472"}
    assert rows[0].availability_zone is None and rows[0].charge_class is None  # NULL literals
    assert set(rows[0].as_focus_dict()) == set(FOCUS_COLUMNS)


@pytest.fixture(scope="module")
def sample_head() -> bytes:
    """The header and first 300 rows of the sample."""
    return b"".join(SAMPLE.read_bytes().splitlines(keepends=True)[:301])


def _as_parquet(path: Path, raw: bytes) -> Path:
    names = raw.split(b"\n", 1)[0].decode().replace('"', "").split(",")
    options = pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False)
    pq.write_table(pa_csv.read_csv(io.BytesIO(raw), convert_options=options), path)
    return path


class _Unseekable(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda d, raw: _write(d / "s.csv.gz", gzip.compress(raw)), id="gzip"),
        pytest.param(lambda d, raw: _write(d / "s.csv", b"\xef\xbb\xbf" + raw), id="bom"),
        pytest.param(lambda d, raw: _write(d / "s", gzip.compress(b"\xef\xbb\xbf" + raw)), id="gzip-bom-no-suffix"),
        pytest.param(lambda d, raw: io.BytesIO(raw), id="file-object"),
        pytest.param(lambda d, raw: _Unseekable(gzip.compress(raw)), id="unseekable-gzip"),
        pytest.param(lambda d, raw: _as_parquet(d / "s.parquet", raw), id="parquet"),
    ],
)
def test_sample_reads_the_same_in_every_container(make, tmp_path, sample, sample_head):
    expected = sample[0][:300]
    rows, reader = read(make(tmp_path, sample_head), "focus", filename="sample")
    assert [row.as_focus_dict() for row in rows] == [row.as_focus_dict() for row in expected]
    assert reader.report.rows("null-literal") == 300


def test_a_callers_file_object_stays_open(sample_head):
    stream = io.BytesIO(sample_head)
    assert len(list(iter_rows(stream, fmt="focus"))) == 300
    assert not stream.closed


# --- provider formats --------------------------------------------------------------------------------------

AWS_CATEGORIES = {
    "Usage": "Usage",
    "DiscountedUsage": "Usage",
    "SavingsPlanCoveredUsage": "Usage",
    "SavingsPlanNegation": "Usage",
    "RIFee": "Purchase",
    "Fee": "Purchase",
    "SavingsPlanRecurringFee": "Purchase",
    "Tax": "Tax",
    "Credit": "Credit",
    "Refund": "Credit",
}


def aws_expected(table: gen.Table, names: dict[str, str] | None = None) -> tuple[Decimal, Decimal, dict[str, Decimal]]:
    """BilledCost, EffectiveCost and BilledCost per ChargeCategory, per the CUR mapping in the FOCUS notes."""
    billed_total = effective_total = Decimal(0)
    categories: dict[str, Decimal] = defaultdict(Decimal)
    for raw in table.rows:
        cell = {legacy: raw[(names or {}).get(legacy, legacy)] for legacy in gen.AWS_CUR2_NAMES}
        billed = Decimal(cell["lineItem/NetUnblendedCost"] or cell["lineItem/UnblendedCost"])
        kind = cell["lineItem/LineItemType"]
        if kind == "SavingsPlanCoveredUsage":
            effective = Decimal(cell["savingsPlan/SavingsPlanEffectiveCost"])
        elif kind == "DiscountedUsage":
            effective = Decimal(cell["reservation/EffectiveCost"])
        elif kind == "RIFee":
            effective = Decimal(cell["reservation/UnusedAmortizedUpfrontFeeForBillingPeriod"]) + Decimal(
                cell["reservation/UnusedRecurringFee"]
            )
        elif kind == "SavingsPlanRecurringFee":
            used = Decimal(cell["savingsPlan/UsedCommitment"])
            effective = Decimal(cell["savingsPlan/TotalCommitmentToDate"]) - used
        elif kind == "SavingsPlanNegation" or (kind == "Fee" and cell["reservation/ReservationARN"]):
            effective = Decimal(0)
        else:
            effective = billed
        billed_total += billed
        effective_total += effective
        categories[AWS_CATEGORIES[kind]] += billed
    return billed_total, effective_total, dict(categories)


@pytest.mark.parametrize(
    ("fmt", "write", "names"),
    [
        ("aws_cur_legacy", lambda t, d: gen.write_csv(t, d / "cur.csv"), None),
        ("aws_cur_legacy", lambda t, d: gen.write_csv(t, d / "cur.csv.gz", compress=True), None),
        ("aws_cur2", lambda t, d: gen.write_csv(t, d / "cur2.csv.gz", compress=True), gen.AWS_CUR2_NAMES),
        ("aws_cur2", lambda t, d: gen.write_aws_cur2_parquet(t, d / "cur2.parquet"), gen.AWS_CUR2_NAMES),
    ],
    ids=["legacy-csv", "legacy-gzip", "cur2-gzip", "cur2-parquet"],
)
def test_aws_totals_match_the_raw_columns(fmt, write, names, tmp_path):
    table = gen.aws_cur_legacy() if fmt == "aws_cur_legacy" else gen.aws_cur2()
    rows, reader = read(write(table, tmp_path), fmt)
    billed, effective, categories = aws_expected(table, names)
    assert len(rows) == len(table.rows)
    assert sum(row.billed_cost for row in rows) == billed
    assert sum(row.effective_cost for row in rows) == effective
    assert by_category(rows) == categories
    assert reader.billing_periods == {JANUARY, FEBRUARY}
    credits = [row for row in rows if row.charge_category == "Credit"]
    assert credits and all(row.billed_cost < 0 for row in credits)
    tags = rows[0].tags  # resourceTags/user:team and resource_tags {"user_team": ...} alike
    assert tags["team"] == "shop" and tags["aws:createdBy"] == "IAMUser:AIDAEXAMPLE:deploy"


def test_legacy_and_cur2_give_the_same_rows(tmp_path):
    legacy, _ = read(gen.write_csv(gen.aws_cur_legacy(), tmp_path / "cur.csv"), "aws_cur_legacy")
    cur2, _ = read(gen.write_aws_cur2_parquet(gen.aws_cur2(), tmp_path / "cur2.parquet"), "aws_cur2")
    assert [r.as_focus_dict() for r in legacy] == [r.as_focus_dict() for r in cur2]


AZURE_COMMITMENTS = ("Reservation", "SavingsPlan")
AZURE_CATEGORIES = {
    "Usage": "Usage",
    "UnusedReservation": "Usage",
    "UnusedSavingsPlan": "Usage",
    "Purchase": "Purchase",
    "Refund": "Purchase",
    "Tax": "Tax",
    "Credit": "Credit",
}


def azure_expected(table: gen.Table, agreement: str) -> tuple[Decimal, Decimal, dict[str, Decimal]]:
    """Microsoft's conversion: commitment usage is not billed again, commitment purchases are not amortised."""
    cost, charge_type, model = (
        ("CostInBillingCurrency", "ChargeType", "PricingModel")
        if agreement == "ea"
        else ("costInBillingCurrency", "chargeType", "pricingModel")
    )
    billed_total = effective_total = Decimal(0)
    categories: dict[str, Decimal] = defaultdict(Decimal)
    for raw in table.rows:
        amount, kind, commitment = Decimal(raw[cost]), raw[charge_type], raw[model] in AZURE_COMMITMENTS
        billed = Decimal(0) if commitment and kind in ("Usage", "UnusedReservation", "UnusedSavingsPlan") else amount
        billed_total += billed
        effective_total += Decimal(0) if commitment and kind in ("Purchase", "Refund") else amount
        categories[AZURE_CATEGORIES[kind]] += billed
    return billed_total, effective_total, dict(categories)


@pytest.mark.parametrize("dataset", ["actual", "amortized"])
@pytest.mark.parametrize("agreement", ["ea", "mca"])
def test_azure_totals_match_the_raw_columns(agreement, dataset, tmp_path):
    table = gen.azure_cost_details(agreement=agreement, dataset=dataset)
    path = gen.write_csv(table, tmp_path / "azure.csv", bom=agreement == "ea")
    rows, reader = read(path, f"azure_{agreement}")
    billed, effective, categories = azure_expected(table, agreement)
    assert sum(row.billed_cost for row in rows) == billed
    assert sum(row.effective_cost for row in rows) == effective
    assert by_category(rows) == categories
    # Inclusive end dates in the file, exclusive ends in FOCUS.
    assert reader.billing_periods == {JANUARY, FEBRUARY}
    assert all((row.charge_period_end - row.charge_period_start).days == 1 for row in rows)
    assert rows[0].tags == {"env": "prod", "team": "web"}  # braces-less in EA, key " team" trimmed
    assert rows[0].pricing_quantity * 10 == rows[0].consumed_quantity  # priced per block of "10 Hours"


def test_azure_amortized_plus_actual_purchases_gives_invoice_and_amortised_totals(tmp_path):
    actual = gen.azure_cost_details(dataset="actual")
    amortized = gen.azure_cost_details(dataset="amortized")
    actual_rows, _ = read(gen.write_csv(actual, tmp_path / "actual.csv", bom=True), "azure_ea")
    amortized_rows, _ = read(gen.write_csv(amortized, tmp_path / "amortized.csv", bom=True), "azure_ea")
    combined = amortized_rows + [row for row in actual_rows if keep_from_actual_cost(row)]
    assert sum(row.billed_cost for row in combined) == decimal_sum(r["CostInBillingCurrency"] for r in actual.rows)
    assert sum(row.effective_cost for row in combined) == decimal_sum(
        r["CostInBillingCurrency"] for r in amortized.rows
    )


def test_azure_refunds_placeholders_and_commitments(tmp_path):
    rows, reader = read(gen.write_csv(gen.azure_cost_details(), tmp_path / "ea.csv", bom=True), "azure_ea")
    refund = next(row for row in rows if row.extras["x_ChargeType"] == "Refund")
    assert (refund.charge_category, refund.charge_class, refund.effective_cost) == ("Purchase", "Correction", 0)
    assert refund.billed_cost < 0
    purchase = next(row for row in rows if row.extras["x_ChargeType"] == "Purchase")
    assert purchase.region_name is None  # "Unassigned" placeholder
    assert reader.report.rows("placeholder") > 0
    covered = next(row for row in rows if row.commitment_discount_type == "Savings Plan")
    assert (covered.commitment_discount_category, covered.commitment_discount_status) == ("Spend", "Used")


def gcp_expected(records: list[dict]) -> tuple[Decimal, dict[str, Decimal]]:
    categories: dict[str, Decimal] = defaultdict(Decimal)
    mapping = {"regular": "Usage", "tax": "Tax", "adjustment": "Adjustment", "rounding_error": "Adjustment"}
    for record in records:
        net = Decimal(record["cost"]) + sum((Decimal(repr(c["amount"])) for c in record["credits"]), Decimal(0))
        categories[mapping[record["cost_type"]]] += net
    return sum(categories.values(), Decimal(0)), dict(categories)


@pytest.mark.parametrize(
    "write",
    [lambda r, d: gen.write_gcp_csv(r, d / "gcp.csv"), lambda r, d: gen.write_gcp_parquet(r, d / "gcp.parquet")],
    ids=["csv", "parquet"],
)
def test_gcp_credits_are_netted_and_totals_match(write, tmp_path):
    records = gen.gcp_detailed()
    rows, reader = read(write(records, tmp_path), "gcp")
    total, categories = gcp_expected(records)
    assert sum(row.billed_cost for row in rows) == total == sum(row.effective_cost for row in rows)
    assert by_category(rows) == categories
    credited = next(row for row, record in zip(rows, records, strict=True) if record["credits"])
    assert Decimal(credited.extras["x_Credits"][0]["amount"]) < 0
    # Resource labels (" team" trimmed) override the project's; system labels are merged in.
    env = records[0]["labels"][0]["value"]
    assert rows[0].tags == {"team": "web", "env": env, "compute.googleapis.com/machine_spec": "e2-standard-2"}
    assert reader.report.rows("charge-outside-billing-period") == 0


def test_gcp_billing_periods_follow_the_pacific_invoice_month(tmp_path):
    rows, _ = read(gen.write_gcp_csv(gen.gcp_detailed(), tmp_path / "gcp.csv"), "gcp")
    early_february = next(row for row in rows if row.charge_period_start == datetime(2024, 2, 1, 3, tzinfo=UTC))
    assert early_february.billing_period == (datetime(2024, 1, 1, 8, tzinfo=UTC), datetime(2024, 2, 1, 8, tzinfo=UTC))


def test_detect_format_recognises_every_header():
    headers = {
        "focus": SAMPLE.read_text(encoding="utf-8").split("\n", 1)[0].replace('"', "").split(","),
        "aws_cur_legacy": gen.AWS_CUR_LEGACY_COLUMNS,
        "aws_cur2": [*gen.AWS_CUR2_NAMES.values(), "resource_tags"],
        "azure_ea": ["\ufeff" + gen.AZURE_EA_COLUMNS[0], *gen.AZURE_EA_COLUMNS[1:]],
        "azure_mca": gen.AZURE_MCA_COLUMNS,
        "gcp": gen.GCP_CSV_COLUMNS,
    }
    assert {fmt: detect_format(header) for fmt, header in headers.items()} == {fmt: fmt for fmt in headers}
    assert set(FORMATS) == set(headers)
    assert detect_format(["date", "amount", "description"]) is None


def test_format_can_be_detected_from_the_file(tmp_path):
    rows, reader = read(gen.write_csv(gen.azure_cost_details(agreement="mca"), tmp_path / "x.csv"), None)
    assert reader.format == "azure_mca" and rows


# --- bad input ---------------------------------------------------------------------------------------------


def focus_csv(path: Path, rows: int = 30, changes: dict[int, dict[str, str]] | None = None) -> Path:
    """The sample's first rows, with ``changes`` {data row index: {column: new text}} applied."""
    with SAMPLE.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        records = [row for _, row in zip(range(rows), reader, strict=False)]
        columns = list(reader.fieldnames or [])
    for index, cells in (changes or {}).items():
        records[index].update(cells)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def test_missing_required_column(tmp_path):
    table = gen.aws_cur_legacy()
    table.columns.remove("lineItem/UsageStartDate")
    error = rejection(gen.write_csv(table, tmp_path / "cur.csv"), "aws_cur_legacy", "cur.csv")
    assert (error.row, error.column) == (1, "lineItem/UsageStartDate")
    assert str(error).startswith("cur.csv row 1, column lineItem/UsageStartDate: required column missing")
    assert "AWS Cost and Usage Report (legacy CUR)" in str(error)


def test_non_numeric_cost(tmp_path):
    path = focus_csv(tmp_path / "invoice.csv", changes={15: {"BilledCost": "abc"}})
    error = rejection(path, "focus", "invoice.csv")
    assert (
        str(error) == "invoice.csv row 17, column BilledCost: 'abc' is not a number (expected a decimal such as 12.50)"
    )
    assert (error.row, error.column, error.value) == (17, "BilledCost", "abc")


def test_unparseable_date(tmp_path):
    path = focus_csv(tmp_path / "dates.csv", changes={3: {"ChargePeriodStart": "2024-13-45"}})
    error = rejection(path, "focus", "dates.csv")
    assert (error.row, error.column, error.value) == (5, "ChargePeriodStart", "2024-13-45")
    assert str(error).startswith("dates.csv row 5, column ChargePeriodStart: '2024-13-45' is not a date/time")


def test_mixed_currencies_name_the_first_differing_row(tmp_path):
    path = focus_csv(tmp_path / "fx.csv", changes={i: {"BillingCurrency": "EUR"} for i in range(9, 30)})
    error = rejection(path, "focus", "fx.csv")
    assert (error.row, error.column, error.value) == (11, "BillingCurrency", "EUR")
    assert "fx.csv row 11, column BillingCurrency: 'EUR' differs from 'USD'" in str(error)


def test_empty_file(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    error = rejection(tmp_path / "empty.csv", "focus", "empty.csv")
    assert str(error).startswith("empty.csv: the file is empty")


def test_header_only_file(tmp_path):
    path = focus_csv(tmp_path / "header.csv", rows=0)
    error = rejection(path, "focus", "header.csv")
    assert error.row == 2 and str(error).startswith("header.csv row 2: the file has a header but no data rows")


def test_wrong_format_chosen(tmp_path):
    path = gen.write_csv(gen.azure_cost_details(), tmp_path / "azure.csv", bom=True)
    error = rejection(path, "aws_cur_legacy", "azure.csv")
    assert error.row == 1
    assert "azure.csv row 1: the header looks like Azure cost details, Enterprise Agreement, not AWS" in str(error)


def test_truncated_gzip_is_rejected_with_the_row_reached(tmp_path):
    data = gzip.compress(SAMPLE.read_bytes())
    (tmp_path / "bill.csv.gz").write_bytes(data[: len(data) // 2])
    reader = BillingFileReader(tmp_path / "bill.csv.gz", fmt="focus")
    yielded = 0
    with pytest.raises(BillingFileError) as caught:
        for _ in reader.rows():
            yielded += 1
    error = caught.value
    assert 1 < error.row <= 1001 and error.row > yielded
    assert str(error).startswith(f"bill.csv.gz row {error.row}: the gzip data ends early")


def test_several_bad_rows_are_listed_and_no_row_follows_the_first(tmp_path):
    path = focus_csv(tmp_path / "bad.csv", changes={i: {"EffectiveCost": "n/a"} for i in (4, 9, 12)})
    reader = BillingFileReader(path, fmt="focus")
    yielded = []
    with pytest.raises(BillingFileError) as caught:
        yielded.extend(row.row for row in reader.rows())
    assert yielded == [2, 3, 4, 5]  # rows before the first error only
    assert [e.row for e in caught.value.errors] == [6, 11, 14]
    assert "2 more errors: row 11, column EffectiveCost: 'n/a' is not a number" in str(caught.value)


def test_reading_stops_after_max_row_errors(tmp_path):
    path = focus_csv(tmp_path / "bad.csv", rows=80, changes={i: {"BilledCost": "x"} for i in range(80)})
    error = rejection(path, "focus", "bad.csv")
    assert len(error.errors) == MAX_ROW_ERRORS and error.stopped_early
    assert f"reading stopped after {MAX_ROW_ERRORS} errors" in str(error)


def test_a_row_with_the_wrong_number_of_fields(tmp_path):
    path = focus_csv(tmp_path / "short.csv")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:3], "1,2,3", *lines[3:]]) + "\n")
    error = rejection(path, "focus", "short.csv")
    assert (error.row, error.problem) == (4, "has 3 fields but the header has 44")


def test_an_unknown_format_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown billing format"):
        BillingFileReader(SAMPLE, fmt="excel")


# --- values ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "strict"),
    [
        ("2024-01-31T00:00:00Z", True),
        ("2024-01-31 00:00:00", False),
        ("2024-01-31", False),
        ("01/31/2024", False),
        ("2024-01-31T02:00:00+02:00", False),
        ("2024-01-30 16:00:00-0800", False),
        ("2024-01-31 00:00:00 UTC", False),
        ("2024-01-31T00:00:00.0000000Z", False),
        ("1/31/2024 12:00:00 AM", False),
    ],
)
def test_datetime_forms(text, strict):
    assert parse_datetime(text) == (datetime(2024, 1, 31, tzinfo=UTC), strict)


@pytest.mark.parametrize("text", ["1,000", "$5", "NaN", "Infinity", "1_000", "", "1e99999", "٣", "12 USD"])
def test_numbers_that_are_not_decimals(text):
    with pytest.raises(ValueError):
        parse_decimal(text)


def test_parquet_doubles_keep_their_written_digits():
    assert parse_decimal(0.1) == Decimal("0.1") and parse_decimal(4e-10) == Decimal("4E-10")
    assert parse_decimal("35.2E-7") == Decimal("0.00000352")


def test_required_columns_are_published():
    assert "BilledCost" in required_columns("focus") and "cost" in required_columns("gcp")


# --- properties --------------------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Cells chosen to reach the parsers' edges (cheap to generate, unlike nested decimal or datetime strategies).
EDGE_CELLS = [
    *("", " ", "NULL", "-2", "Unassigned", "USD", "EUR", "usd", "Usage", "usage-based", "Credit", "Refund", "tax"),
    *("0", "-0.0001", "12.50", "+1", "1e5", "35.2E-7", "1E-999", "1e1000", "1,000", "NaN", "-Infinity", "٣"),
    *("2024-01-31T00:00:00Z", "2024-01-31 00:00:00", "2024-13-45", "9999-12-31", "0001-01-01T00:00:00+05:00"),
    *("12/31/9999", "2/30/2024", "1/1/2024 13:00 PM", "2024-01-31T00:00:00+24:00", "202401", "999912", "000001"),
    *("[]", "{}", '[{"amount": "x"}]', '[{"amount": -1.5, "type": 3}]', '[{"key": 1}]', '"a": "b"', "[[[["),
    *('{"a": {"b": 1}}', '{"a": 1, "a": 2}', '{"a": NaN}', "[" * 3000, "DiscountedUsage", "SavingsPlanCoveredUsage"),
]
CELLS = st.one_of(st.sampled_from(EDGE_CELLS), st.text(max_size=8))
WIDTH = 11  # cells per fuzzed row: the widest fuzzed header (FOCUS, AWS); rows are cut to fit


def _consume(data: bytes, fmt: str) -> None:
    with contextlib.suppress(BillingFileError):
        list(iter_rows(io.BytesIO(data), fmt=fmt, filename="fuzz.csv"))


MAGIC = st.sampled_from([b"", b"\x1f\x8b", b"PAR1", b"PK\x03\x04", b"\xef\xbb\xbf"])


@PROPERTY_SETTINGS
@given(magic=MAGIC, data=st.binary(max_size=2000), fmt=st.sampled_from(sorted(FORMATS)))
def test_arbitrary_bytes_only_raise_billing_file_errors(magic, data, fmt):
    _consume(magic + data, fmt)


@PROPERTY_SETTINGS
@given(fmt=st.sampled_from(sorted(FORMATS)), rows=st.lists(st.lists(CELLS, min_size=WIDTH, max_size=WIDTH), max_size=2))
def test_arbitrary_csv_cells_only_raise_billing_file_errors(fmt, rows):
    header = [*required_columns(fmt), "Tags", "credits", "labels", "lineItem/NetUnblendedCost"]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *(row[: len(header)] for row in rows)])
    _consume(buffer.getvalue().encode("utf-8"), fmt)


@PROPERTY_SETTINGS
@given(cut=st.integers(min_value=0, max_value=100_000))
def test_a_truncated_gzip_never_reads_as_complete(sample_head, cut):
    data = gzip.compress(sample_head[:8000])
    with pytest.raises(BillingFileError):
        list(iter_rows(io.BytesIO(data[: cut % len(data)]), fmt="focus", filename="cut.csv.gz"))


@pytest.fixture(scope="module")
def small_parquet(tmp_path_factory, sample_head) -> bytes:
    twenty_rows = b"".join(sample_head.splitlines(keepends=True)[:21])
    return _as_parquet(tmp_path_factory.mktemp("parquet") / "s.parquet", twenty_rows).read_bytes()


@PROPERTY_SETTINGS
@given(cut=st.integers(min_value=0, max_value=100_000), flip=st.integers(min_value=0, max_value=100_000))
def test_a_damaged_parquet_file_only_raises_billing_file_errors(small_parquet, cut, flip):
    data = bytearray(small_parquet[: max(cut % len(small_parquet), 4)])
    data[flip % len(data)] ^= 0xFF
    _consume(bytes(data), "focus")


# --- large files: values repeat from row to row -----------------------------------------------------------
# The FOCUS reader keeps parsed amounts, date/times and tags for the file and tallies rows whose quirks
# repeat; none of that may change what a row holds or what the report says.


def _sample_records() -> tuple[list[str], list[list[str]]]:
    with SAMPLE.open(encoding="utf-8", newline="") as handle:
        header, *records = csv.reader(handle)
    return header, records


def _csv_bytes(header: list[str], records: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *records])
    return buffer.getvalue().encode("utf-8")


def test_repeated_rows_report_every_quirk_of_every_row(sample):
    header, records = _sample_records()
    data = _csv_bytes(header, records * 3)
    rows, reader = read(io.BytesIO(data), "focus", filename="three-times.csv")
    assert len(rows) == 3000 and [row.row for row in rows[:2]] == [2, 3]
    assert sum(row.billed_cost for row in rows) == 3 * sum(row.billed_cost for row in sample[0])
    # Counted from the raw cells: one null-literal note per NULL cell, one empty-string note per blank one.
    null_cells = Counter(header[i] for record in records for i, cell in enumerate(record) if cell == "NULL")
    blank_cells = Counter(header[i] for record in records for i, cell in enumerate(record) if not cell.strip())
    report = reader.report
    assert report.rows("null-literal") == 3 * sum(1 for record in records if "NULL" in record)
    assert dict(report.findings["null-literal"].columns) == {c: 3 * n for c, n in null_cells.items()}
    assert report.rows("empty-string") == 3 * sum(1 for record in records if any(not c.strip() for c in record))
    assert dict(report.findings["empty-string"].columns) == {c: 3 * n for c, n in blank_cells.items()}
    assert report.rows("datetime-format") == 3000
    assert report.findings["datetime-format"].columns == Counter(
        dict.fromkeys(["BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"], 3000)
    )
    first_nulls = [header[i] for i, cell in enumerate(records[0]) if cell == "NULL"][:5]
    assert [(e.row, e.column) for e in report.findings["null-literal"].examples] == [(2, c) for c in first_nulls]
    assert report.rows("list-cost") == 3 * sample[1].report.rows("list-cost")


def test_rows_with_the_same_tags_do_not_share_them(tmp_path):
    tags = '{"team": "web", "env": "prod"}'
    path = focus_csv(tmp_path / "tags.csv", rows=3, changes={i: {"Tags": tags} for i in range(3)})
    rows, _ = read(path, "focus")
    rows[0].tags["team"] = "changed"
    assert rows[1].tags == rows[2].tags == {"team": "web", "env": "prod"}
    assert rows[1].billing_period_start == rows[2].billing_period_start == datetime(2024, 9, 1, tzinfo=UTC)


def test_a_bad_cell_after_many_good_ones_is_still_named(tmp_path):
    header, records = _sample_records()
    records = [list(record) for record in records * 2]
    at = header.index("ListCost")
    records[1500][at] = "12,50"
    error = rejection(io.BytesIO(_csv_bytes(header, records)), "focus", "late.csv")
    expected = "a decimal such as 12.50"
    assert str(error) == f"late.csv row 1502, column ListCost: '12,50' is not a number (expected {expected})"


def test_the_report_can_be_read_while_rows_stream(sample_head):
    reader = BillingFileReader(io.BytesIO(sample_head), fmt="focus")
    for row in reader.rows():
        assert reader.report.rows("datetime-format") == row.row - 1  # every row so far, this one included
    _, whole = read(io.BytesIO(sample_head), "focus")
    assert reader.report.as_list() == whole.report.as_list()


def test_column_names_are_data_never_code(tmp_path):
    header, records = _sample_records()
    odd = ['x_say "hi"', "x_'); raise SystemExit('", "x_{v0}", "x_line\nbreak", "x_\\"]
    data = _csv_bytes([*header, *odd], [[*record, *odd] for record in records[:5]])
    rows, reader = read(io.BytesIO(data), "focus")
    ids = [record[header.index("Id")] for record in records[:5]]
    assert [row.extras for row in rows] == [{"Id": id_} | {name: name for name in odd} for id_ in ids]
    assert reader.report.findings["column-prefix"].columns == Counter({"Id": 1})


def test_caches_that_fill_up_change_nothing(monkeypatch, sample_head):
    full_rows, full = read(io.BytesIO(sample_head), "focus")
    monkeypatch.setattr(Cells, "CACHED", 3)
    monkeypatch.setattr(Cells, "CACHED_KEY_VALUES", 2)
    monkeypatch.setattr(ConformanceReport, "PATTERNS", 2)
    rows, reader = read(io.BytesIO(sample_head), "focus")
    assert [repr(row) for row in rows] == [repr(row) for row in full_rows]
    assert reader.report.as_list() == full.report.as_list()


# The FOCUS reader's fast path against reading the same record one cell at a time through Cells, with
# the complete rules: both must give the same values, the same errors and the same notes.
# Nullable columns first, so that they are read even when a required cell further on rejects the row.
FOCUS_FUZZ_COLUMNS = [
    "Tags",
    "RegionName",
    "ChargeCategory",
    "ChargeFrequency",
    "ListCost",
    "x_Custom",
    "Other",
    "BilledCost",
    "EffectiveCost",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
]


def _read_cell_by_cell(header: list[str], records: list[list[str]]) -> tuple[list, list]:
    report = ConformanceReport()
    cells = Cells(Columns(header), report, placeholders=FocusMapper.placeholders, focus_rules=True)
    required = set(FocusMapper.required)
    results: list = []
    for number, record in enumerate(records, start=2):
        cells.load(number, record)
        values, extras = {}, {}
        try:
            for column in header:
                if column in DECIMAL_COLUMNS:
                    value = cells.decimal(column, required=column in required)
                elif column in DATETIME_COLUMNS:
                    value = cells.datetime(column, required=column in required)
                elif column in KEY_VALUE_COLUMNS:
                    value = cells.key_values(column)
                elif column in ENUMERATIONS:
                    value = cells.enum(column, ENUMERATIONS[column])
                elif column in FOCUS_COLUMNS:
                    value = cells.text(column, required=column in required, expected="a currency code such as USD")
                else:
                    continue
                values[FOCUS_COLUMNS[column]] = value
            for column in header:
                if column not in FOCUS_COLUMNS and (value := cells.text(column)) is not None:
                    extras[column] = value
        except CellError as exc:
            results.append(("error", exc.column, exc.value, exc.problem, exc.expected))
            continue
        results.append(repr({**values, "extras": extras | cells.extras}))
    return results, report.as_list()


def _read_with_mapper(header: list[str], records: list[list[str]], *, text_only: bool) -> tuple[list, list]:
    report = ConformanceReport()
    mapper = FocusMapper(header, report, text_only=text_only)
    names = [FOCUS_COLUMNS[column] for column in header if column in FOCUS_COLUMNS]
    results: list = []
    for number, record in enumerate(records, start=2):
        try:
            row = mapper.read(number, record)
        except CellError as exc:
            results.append(("error", exc.column, exc.value, exc.problem, exc.expected))
            continue
        results.append(repr({name: getattr(row, name) for name in names} | {"extras": row.extras}))
    file_level = {"column-prefix", "mandatory-column-missing"}
    return results, [finding for finding in report.as_list() if finding["rule"] not in file_level]


FOCUS_CELLS = st.one_of(
    st.sampled_from(EDGE_CELLS),
    st.sampled_from(['{" a": "1", "a": "2"}', '{"k": 1.5}', '"k": "v"', '{"k": [1]}', "0.00", "-0", "usage-based"]),
    st.text(max_size=8),
)
# Mostly readable values in the required columns, so that many rows are read to the end.
READABLE = {
    "decimal": st.sampled_from(["12.50", "0", "-0.0001", "1e5", "35.2E-7", " 7 "]),
    "datetime": st.sampled_from(["2024-01-31T00:00:00Z", "2024-01-31 00:00:00", "2024-02-01", "01/31/2024"]),
    "currency": st.sampled_from(["USD", "usd"]),
}
FOCUS_ROW = st.tuples(
    *[FOCUS_CELLS] * 7,
    *[st.one_of(READABLE["decimal"], READABLE["decimal"], READABLE["decimal"], FOCUS_CELLS)] * 2,
    st.one_of(READABLE["currency"], READABLE["currency"], READABLE["currency"], FOCUS_CELLS),
    *[st.one_of(READABLE["datetime"], READABLE["datetime"], READABLE["datetime"], FOCUS_CELLS)] * 4,
)


# Values a Parquet file can hold besides text.
TYPED_VALUES = [None, 0, 1.5, Decimal("2.50"), datetime(2024, 1, 31, tzinfo=UTC), b"x", [("k", "v")], {"k": 1}, True]


@PROPERTY_SETTINGS
@given(
    rows=st.lists(FOCUS_ROW, min_size=1, max_size=3),
    repeat=st.integers(min_value=1, max_value=3),
    text_only=st.booleans(),  # a CSV file's reader, or one for Parquet, whose values may be of any type
    typed=st.lists(
        st.tuples(st.integers(min_value=0, max_value=len(FOCUS_FUZZ_COLUMNS) - 1), st.sampled_from(TYPED_VALUES)),
        max_size=4,
    ),
)
def test_the_focus_reader_agrees_with_reading_cell_by_cell(rows, repeat, text_only, typed):
    records = [list(row) for row in rows] * repeat  # repeated texts take the paths for values read before
    if not text_only:
        for position, value in typed:
            records[-1][position] = value
    expected = _read_cell_by_cell(FOCUS_FUZZ_COLUMNS, records)
    assert _read_with_mapper(FOCUS_FUZZ_COLUMNS, records, text_only=text_only) == expected


# The report tallies rows whose notes repeat; it must say what noting each finding in turn would say.
def _findings_note_by_note(notes: list[tuple[str, int | None, str | None, str | None]]) -> list:
    findings: dict[str, dict] = {}
    for rule, row, column, value in notes:
        finding = findings.setdefault(rule, {"rows": 0, "last": "none yet", "columns": {}, "examples": []})
        if row is None or row != finding["last"]:
            finding["rows"] += 1
            finding["last"] = row
        if column:
            finding["columns"][column] = finding["columns"].get(column, 0) + 1
        if len(finding["examples"]) < 5:
            finding["examples"].append((row, column, None if value is None else repr(value)))
    return [(rule, f["rows"], list(f["columns"].items()), f["examples"]) for rule, f in findings.items()]


def _findings_of(report) -> list:
    return [
        (rule, f.rows, list(f.columns.items()), [(e.row, e.column, e.value) for e in f.examples])
        for rule, f in report.findings.items()
    ]


NOTE = st.tuples(
    st.integers(min_value=0, max_value=2),  # rows to move on by
    st.sampled_from(["null-literal", "empty-string", "enum-case"]),
    st.sampled_from(["A", "B", "C", None]),
    st.sampled_from(["x", "y", None]),
    st.booleans(),  # read the report after this note
)


@PROPERTY_SETTINGS
@given(file_notes=st.lists(st.sampled_from(["A", "B"]), max_size=2), steps=st.lists(NOTE, max_size=120))
def test_the_report_says_what_noting_one_by_one_says(file_notes, steps):
    report = ConformanceReport()
    noted: list[tuple[str, int | None, str | None, str | None]] = []
    for column in file_notes:
        report.note("column-prefix", row=None, column=column)
        noted.append(("column-prefix", None, column, None))
    row = 2
    for move, rule, column, value, look in steps:
        row += move
        report.note(rule, row=row, column=column, value=value)
        noted.append((rule, row, column, value))
        if look:
            assert _findings_of(report) == _findings_note_by_note(noted)
    assert _findings_of(report) == _findings_note_by_note(noted)
