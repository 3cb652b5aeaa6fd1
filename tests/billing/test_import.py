"""Importing billing files: exact totals, idempotence, all-or-nothing rejection, the two commands."""

import gzip
import hashlib
import json
import shutil
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from apps.billing.models import BillingImport, BillingLineItem, BillingSource, CostRollup

from .money import assert_money_equal

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "focus-1.0_sample_1000.csv"


def _pandas_totals(path: Path) -> dict:
    """Independent sums: pandas reads text, Decimal adds it up (no float anywhere)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)

    def total(column: str, rows=None) -> Decimal:
        values = frame[column] if rows is None else frame.loc[rows, column]
        return sum((Decimal(v) for v in values if v not in ("", "NULL")), Decimal("0"))

    periods = {}
    for start in sorted(frame["BillingPeriodStart"].unique()):
        rows = frame["BillingPeriodStart"] == start
        periods[start[:10]] = {
            "rows": int(rows.sum()),
            "billed": total("BilledCost", rows),
            "effective": total("EffectiveCost", rows),
        }
    return {"rows": len(frame), "billed": total("BilledCost"), "effective": total("EffectiveCost"), "periods": periods}


def _summary(source: str) -> dict:
    out = StringIO()
    call_command("billing_summary", "--source", source, "--json", stdout=out)
    return json.loads(out.getvalue())


def _import(path, source="focus-sample", *extra) -> str:
    out = StringIO()
    call_command(
        "import_billing", str(path), "--source", source, "--no-progress", *extra, stdout=out, stderr=StringIO()
    )
    return out.getvalue()


def test_focus_sample_imports_with_exact_totals_and_reimport_changes_nothing():
    expected = _pandas_totals(SAMPLE)
    message = _import(SAMPLE)
    assert "Imported 1,000 rows" in message

    summary = _summary("focus-sample")
    assert summary["rows"] == expected["rows"] == 1000
    assert_money_equal(summary["billed_cost"], expected["billed"])
    assert_money_equal(summary["effective_cost"], expected["effective"])
    by_period = {p["billing_period_start"]: p for p in summary["periods"]}
    assert set(by_period) == set(expected["periods"])
    for start, want in expected["periods"].items():
        assert by_period[start]["rows"] == want["rows"]
        assert_money_equal(by_period[start]["billed_cost"], want["billed"])
        assert_money_equal(by_period[start]["effective_cost"], want["effective"])

    # Rollups hold the same money as the line items.
    assert_money_equal(sum(CostRollup.objects.values_list("billed_cost", flat=True), Decimal("0")), expected["billed"])

    record = BillingImport.objects.get()
    assert record.status == BillingImport.Status.SUCCEEDED
    assert (record.rows_read, record.rows_imported, record.rows_rejected) == (1000, 1000, 0)
    assert_money_equal(record.billed_total, expected["billed"])
    assert_money_equal(record.effective_total, expected["effective"])
    assert record.format == "focus" and record.currency == "USD"
    assert record.checksum == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
    assert record.size == SAMPLE.stat().st_size
    assert record.warnings, "the sample's known conformance problems are reported as warnings"

    _import(SAMPLE)  # the provider re-delivers the same file
    assert _summary("focus-sample") == summary
    assert BillingLineItem.objects.count() == 1000
    assert_money_equal(sum(CostRollup.objects.values_list("billed_cost", flat=True), Decimal("0")), expected["billed"])
    assert BillingImport.objects.filter(status=BillingImport.Status.SUCCEEDED).count() == 2


def test_restated_month_replaces_only_that_months_rows(tmp_path):
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    _import(SAMPLE)
    before = _summary("focus-sample")
    # The provider restates the September rows: every BilledCost doubled, October rows absent.
    september = frame[frame["BillingPeriodStart"].str.startswith("2024-09")].copy()
    september["BilledCost"] = [str(Decimal(v) * 2) if v != "NULL" else v for v in september["BilledCost"]]
    restated = tmp_path / "restated.csv"
    september.to_csv(restated, index=False)
    _import(restated)
    after = {p["billing_period_start"]: p for p in _summary("focus-sample")["periods"]}
    for period in before["periods"]:
        start = period["billing_period_start"]
        if start.startswith("2024-09"):
            assert_money_equal(after[start]["billed_cost"], Decimal(period["billed_cost"]) * 2)
        else:
            assert after[start] == period  # untouched


def _rejects(path, match: str, *extra) -> str:
    with pytest.raises(CommandError) as exc:
        _import(path, "focus-sample", *extra)
    assert match in str(exc.value), str(exc.value)
    return str(exc.value)


def _write(tmp_path, name, text) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def imported_sample():
    _import(SAMPLE)
    return _summary("focus-sample")


def _sample_lines() -> list[str]:
    return SAMPLE.read_text().splitlines()


def _assert_unchanged(before):
    assert _summary("focus-sample") == before
    assert BillingImport.objects.filter(status=BillingImport.Status.FAILED).exists()


def test_missing_required_column_is_rejected_and_data_kept(tmp_path, imported_sample):
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).drop(columns=["BilledCost"])
    path = tmp_path / "no-billed.csv"
    frame.to_csv(path, index=False)
    message = _rejects(path, "BilledCost", "--format", "focus")
    assert "no-billed.csv row 1" in message
    _assert_unchanged(imported_sample)


def test_missing_required_column_is_named_when_the_format_is_detected(tmp_path, imported_sample):
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).drop(columns=["EffectiveCost"])
    path = tmp_path / "no-effective.csv"
    frame.to_csv(path, index=False)
    message = _rejects(path, "no-effective.csv row 1, column EffectiveCost")
    assert "required column" in message
    _assert_unchanged(imported_sample)


def test_non_numeric_cost_names_row_and_column(tmp_path, imported_sample):
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    frame.loc[16, "BilledCost"] = "12,50 USD"
    path = tmp_path / "bad-cost.csv"
    frame.to_csv(path, index=False)
    message = _rejects(path, "bad-cost.csv row 18, column BilledCost")
    assert "12,50 USD" in message
    _assert_unchanged(imported_sample)
    failed = BillingImport.objects.get(status=BillingImport.Status.FAILED)
    assert failed.errors[0]["row"] == 18 and failed.errors[0]["column"] == "BilledCost"


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("BilledCost", "123456789012345678901"),  # 21 digits before the point
        ("ListCost", "-99999999999999999999.9999999999999999995"),  # rounds to 10^20 at 18 places
    ],
)
def test_a_number_too_large_to_store_names_row_and_column(tmp_path, imported_sample, column, value):
    """numeric(38, 18) keeps 20 digits before the point: a larger number is the file's error, reported as
    such, not a database error that leaves the import to be retried."""
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    frame.loc[40, column] = value
    path = tmp_path / "too-large.csv"
    frame.to_csv(path, index=False)
    message = _rejects(path, f"too-large.csv row 42, column {column}")
    assert value in message and "at most 20 digits before the decimal point" in message
    _assert_unchanged(imported_sample)


def test_unparseable_date_names_row_and_column(tmp_path, imported_sample):
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    frame.loc[3, "ChargePeriodStart"] = "31/09/2024"
    path = tmp_path / "bad-date.csv"
    frame.to_csv(path, index=False)
    _rejects(path, "bad-date.csv row 5, column ChargePeriodStart")
    _assert_unchanged(imported_sample)


def test_mixed_currencies_are_rejected(tmp_path, imported_sample):
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    frame.loc[500, "BillingCurrency"] = "EUR"
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)
    message = _rejects(path, "mixed.csv row 502, column BillingCurrency")
    assert "EUR" in message
    _assert_unchanged(imported_sample)


def test_empty_file_is_rejected(tmp_path, imported_sample):
    _rejects(_write(tmp_path, "empty.csv", ""), "empty.csv")
    _rejects(_write(tmp_path, "header-only.csv", _sample_lines()[0] + "\n"), "no data rows")
    _assert_unchanged(imported_sample)


def test_wrong_format_chosen_says_what_the_file_looks_like(tmp_path, imported_sample):
    path = tmp_path / "focus.csv"
    shutil.copy(SAMPLE, path)
    message = _rejects(path, "focus.csv row 1", "--format", "aws_cur2")
    assert "FOCUS" in message
    _assert_unchanged(imported_sample)


def test_truncated_gzip_is_rejected(tmp_path, imported_sample):
    data = gzip.compress(SAMPLE.read_bytes())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    _rejects(path, "truncated")
    _assert_unchanged(imported_sample)


def test_gzip_and_parquet_import_the_same_totals(tmp_path):
    expected = _pandas_totals(SAMPLE)
    gz = tmp_path / "sample.csv.gz"
    gz.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    _import(gz, "gz")
    assert_money_equal(_summary("gz")["billed_cost"], expected["billed"])
    parquet = tmp_path / "sample.parquet"
    pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).to_parquet(parquet)
    _import(parquet, "pq")
    assert_money_equal(_summary("pq")["billed_cost"], expected["billed"])


def test_missing_file_and_unknown_source_fail_clearly():
    with pytest.raises(CommandError, match="no such file"):
        _import("/nonexistent/file.csv")
    with pytest.raises(CommandError, match="no billing source named 'nope'"):
        call_command("billing_summary", "--source", "nope", "--json")
    assert not BillingSource.objects.filter(name="nope").exists()


def test_deleting_an_import_or_its_source_removes_its_line_items():
    _import(SAMPLE, "to-delete")
    source = BillingSource.objects.get(name="to-delete")
    BillingImport.objects.filter(source=source).delete()
    assert not BillingLineItem.objects.filter(source=source).exists()
    _import(SAMPLE, "to-delete")
    assert BillingLineItem.objects.filter(source=source).count() == 1000
    source.delete()
    assert not BillingLineItem.objects.exists() and not CostRollup.objects.exists()


def test_a_line_items_id_names_its_import_and_row():
    _import(SAMPLE, "ids")
    _import(SAMPLE, "ids")
    first, second = BillingImport.objects.filter(source__name="ids").order_by("pk")
    ids = list(BillingLineItem.objects.filter(source__name="ids").values_list("id", "billing_import_id", "row_number"))
    assert len(ids) == 1000 and {imp for _, imp, _ in ids} == {second.pk} != {first.pk}
    assert all(pk == imp * 2**32 + row for pk, imp, row in ids)
    assert sorted(row for _, _, row in ids) == list(range(2, 1002))


def test_the_extra_columns_are_kept_whole_and_can_be_filtered_by_value():
    _import(SAMPLE, "extra")
    items = BillingLineItem.objects.filter(source__name="extra")
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    first = items.order_by("row_number").first()
    # FOCUS columns without a column of their own are in extra, as the file has them.
    assert isinstance(first.extra, dict)
    assert first.extra["sku_price_id"] == frame.loc[0, "SkuPriceId"]
    same = list(items.filter(extra=first.extra))
    assert first in same and all(item.extra == first.extra for item in same)
    assert len(same) == sum(1 for item in items if item.extra == first.extra)
    assert items.exclude(extra=None).count() + items.filter(extra__isnull=True).count() == 1000
