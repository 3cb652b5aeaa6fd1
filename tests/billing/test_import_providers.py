"""Provider-native exports imported end to end: stored totals and charge categories equal sums of the
generator's raw provider columns (computed in tests/billing/test_formats.py without the reader)."""

from collections import defaultdict
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from apps.billing.models import BillingLineItem, CostRollup

from . import fixtures_gen as gen
from .money import assert_money_equal
from .test_formats import aws_expected, azure_expected, gcp_expected

pytestmark = pytest.mark.django_db


def _import(path, source, fmt):
    call_command(
        "import_billing",
        str(path),
        "--source",
        source,
        "--format",
        fmt,
        "--no-progress",
        stdout=StringIO(),
        stderr=StringIO(),
    )


def _stored(source: str) -> tuple[Decimal, Decimal, dict[str, Decimal]]:
    items = BillingLineItem.objects.filter(source__name=source)
    billed = sum(items.values_list("billed_cost", flat=True), Decimal(0))
    effective = sum(items.values_list("effective_cost", flat=True), Decimal(0))
    categories: dict[str, Decimal] = defaultdict(Decimal)
    for rollup in CostRollup.objects.filter(source__name=source):
        categories[rollup.charge_category] += rollup.billed_cost
    return billed, effective, dict(categories)


def _assert_categories(actual: dict, expected: dict):
    assert set(actual) == {k for k, v in expected.items() if v or k in actual}
    for key, value in expected.items():
        assert_money_equal(actual.get(key, Decimal(0)), value)


@pytest.mark.parametrize(
    ("fmt", "table", "write", "names"),
    [
        ("aws_cur_legacy", gen.aws_cur_legacy, lambda t, d: gen.write_csv(t, d / "cur.csv.gz", compress=True), None),
        ("aws_cur2", gen.aws_cur2, lambda t, d: gen.write_aws_cur2_parquet(t, d / "cur2.parquet"), gen.AWS_CUR2_NAMES),
    ],
    ids=["cur-legacy", "cur-2.0"],
)
def test_aws_exports_import_with_provider_totals(fmt, table, write, names, tmp_path):
    raw = table()
    _import(write(raw, tmp_path), fmt, fmt)
    billed, effective, categories = _stored(fmt)
    want_billed, want_effective, want_categories = aws_expected(raw, names)
    assert BillingLineItem.objects.filter(source__name=fmt).count() == len(raw.rows)
    assert_money_equal(billed, want_billed)
    assert_money_equal(effective, want_effective)
    _assert_categories(categories, want_categories)
    assert categories["Credit"] < 0  # credits and refunds stay negative


@pytest.mark.parametrize("dataset", ["actual", "amortized"])
def test_azure_ea_exports_import_with_provider_totals(dataset, tmp_path):
    raw = gen.azure_cost_details(agreement="ea", dataset=dataset)
    _import(gen.write_csv(raw, tmp_path / f"azure-{dataset}.csv", bom=True), f"azure-{dataset}", "azure_ea")
    billed, effective, categories = _stored(f"azure-{dataset}")
    want_billed, want_effective, want_categories = azure_expected(raw, "ea")
    assert_money_equal(billed, want_billed)
    assert_money_equal(effective, want_effective)
    _assert_categories(categories, want_categories)


def test_gcp_export_imports_with_credits_netted(tmp_path):
    records = gen.gcp_detailed()
    _import(gen.write_gcp_csv(records, tmp_path / "gcp.csv"), "gcp", "gcp")
    billed, effective, categories = _stored("gcp")
    total, want_categories = gcp_expected(records)
    assert_money_equal(billed, total)
    assert_money_equal(effective, total)
    _assert_categories(categories, want_categories)
