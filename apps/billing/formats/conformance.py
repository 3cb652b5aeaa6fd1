"""Conformance findings: FOCUS rules a file breaks, counted per rule, never a reason to reject a row.

Rule numbers refer to the invariants of FOCUS 1.2 as listed in the project's FOCUS notes (section 4).
"""

import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .base import ENUMERATIONS, FOCUS_COLUMNS, MANDATORY_COLUMNS, NormalizedRow, show

RULES: dict[str, str] = {
    "mandatory-column-missing": "A mandatory FOCUS column is absent from the file (rule 1)",
    "mandatory-null": "A mandatory FOCUS column is null (rule 1)",
    "datetime-format": "Date/time not written as YYYY-MM-DDTHH:mm:ssZ; read as UTC (rule 2)",
    "enum-case": "Enumeration value in the wrong case; normalised (rule 3)",
    "enum-value": "Value outside its FOCUS enumeration (rule 3)",
    "list-cost": "ListCost differs from ListUnitPrice x PricingQuantity (rule 4)",
    "contracted-cost": "ContractedCost differs from ContractedUnitPrice x PricingQuantity (rule 4)",
    "credit-costs": "Credit row whose EffectiveCost, ListCost or ContractedCost differs from BilledCost (rule 6)",
    "tax-pricing-quantity": "Tax row with a PricingQuantity or PricingUnit (rule 8)",
    "pricing-quantity-missing": "Usage or Purchase row without PricingQuantity or PricingUnit (rule 8)",
    "consumed-quantity": "ConsumedQuantity on a row that is not Usage (rule 8)",
    "key-value-format": "Key-value column that is not a flat JSON object with unique keys (rule 9)",
    "key-value-braces": "Key-value column written without its outer braces; wrapped (rule 9)",
    "key-value-unparseable": "Key-value column that is not valid JSON; left null, raw text kept in extras (rule 9)",
    "tag-key-whitespace": "Tag key with leading or trailing whitespace; trimmed",
    "null-literal": "The literal NULL written for a null (rule 10)",
    "empty-string": "An empty string written for a null (rule 10)",
    "placeholder": "A placeholder such as -2 or Unassigned written for a null; read as null (rule 10)",
    "column-prefix": "A column that is neither FOCUS nor prefixed x_ (rule 11)",
    "currency-code": "BillingCurrency is not a three-letter ISO 4217 code (rule 12)",
    "service-category": "One ServiceName appears with several ServiceCategory values (rule 13)",
    "period-order": "A period whose start is not before its end",
    "charge-outside-billing-period": "Charge period outside its billing period (a time-zone shift?)",
}


@dataclass(frozen=True, slots=True)
class Example:
    row: int | None
    column: str | None
    value: str | None


@dataclass(slots=True)
class Finding:
    rule: str
    description: str
    rows: int = 0  # rows affected; a file-level finding counts once
    columns: Counter = field(default_factory=Counter)  # how often each column broke the rule
    examples: list[Example] = field(default_factory=list)
    _last_row: int | None = None


class ConformanceReport:
    """Findings aggregated per rule, with the first few examples, for an import report."""

    EXAMPLES = 5

    def __init__(self) -> None:
        self.findings: dict[str, Finding] = {}

    def note(self, rule: str, *, row: int | None, column: str | None = None, value: object = None) -> None:
        finding = self.findings.get(rule)
        if finding is None:
            finding = self.findings[rule] = Finding(rule, RULES[rule])
        if row is None or row != finding._last_row:
            finding.rows += 1
            finding._last_row = row
        if column:
            finding.columns[column] += 1
        if len(finding.examples) < self.EXAMPLES:
            finding.examples.append(Example(row, column, None if value is None else show(value, 100)))

    def rows(self, rule: str) -> int:
        finding = self.findings.get(rule)
        return finding.rows if finding else 0

    def as_list(self) -> list[dict[str, Any]]:
        """JSON-ready findings, most widespread first."""
        return [
            {
                "rule": f.rule,
                "description": f.description,
                "rows": f.rows,
                "columns": dict(f.columns.most_common()),
                "examples": [{"row": e.row, "column": e.column, "value": e.value} for e in f.examples],
            }
            for f in sorted(self.findings.values(), key=lambda f: -f.rows)
        ]


# Below this, a difference between two amounts is rounding noise whatever digits the file writes.
MIN_TOLERANCE = Decimal("0.000001")
_CURRENCY = re.compile(r"[A-Z]{3}")
_MANDATORY = tuple((column, FOCUS_COLUMNS[column]) for column in MANDATORY_COLUMNS)
_ENUMS = tuple((column, FOCUS_COLUMNS[column], frozenset(values)) for column, values in ENUMERATIONS.items())


def _ulp(value: Decimal) -> Decimal:
    """One unit in the last place the value was written with: 0.0100 -> 0.0001."""
    return Decimal(1).scaleb(value.as_tuple().exponent)


# Each written value is rounded to its last digit, so up to half a unit there (carried through the
# product) is rounding, not a real difference: the comparison works at the scale the file writes.
def _differs(actual: Decimal, expected: Decimal) -> bool:
    return abs(actual - expected) > max((_ulp(actual) + _ulp(expected)) / 2, MIN_TOLERANCE)


def _product_differs(total: Decimal, price: Decimal, quantity: Decimal) -> bool:
    slack = (abs(price) * _ulp(quantity) + abs(quantity) * _ulp(price) + _ulp(total)) / 2
    return abs(total - price * quantity) > max(slack, MIN_TOLERANCE)


class ConformanceChecker:
    """Checks each normalised row against the FOCUS invariants and records findings in a report."""

    def __init__(self, report: ConformanceReport) -> None:
        self.report = report
        self._service_categories: dict[str, str] = {}

    def check(self, row: NormalizedRow) -> None:
        note = self.report.note
        n = row.row
        for column, name in _MANDATORY:
            if getattr(row, name) is None:
                note("mandatory-null", row=n, column=column)
        for column, name, allowed in _ENUMS:
            value = getattr(row, name)
            if value is not None and value not in allowed:
                note("enum-value", row=n, column=column, value=value)
        self._check_prices(row)
        self._check_quantities(row)
        if not _CURRENCY.fullmatch(row.billing_currency):
            note("currency-code", row=n, column="BillingCurrency", value=row.billing_currency)
        if row.service_name is not None and row.service_category is not None:
            first = self._service_categories.setdefault(row.service_name, row.service_category)
            if first != row.service_category:
                value = f"{row.service_name}: {row.service_category}, earlier {first}"
                note("service-category", row=n, column="ServiceCategory", value=value)
        self._check_periods(row)

    def _check_prices(self, row: NormalizedRow) -> None:
        n, quantity = row.row, row.pricing_quantity
        if row.charge_class != "Correction" and quantity is not None:
            for rule, column, total, price in (
                ("list-cost", "ListCost", row.list_cost, row.list_unit_price),
                ("contracted-cost", "ContractedCost", row.contracted_cost, row.contracted_unit_price),
            ):
                if total is not None and price is not None and _product_differs(total, price, quantity):
                    self.report.note(rule, row=n, column=column, value=total)
        if row.charge_category == "Credit":
            for column, amount in (
                ("EffectiveCost", row.effective_cost),
                ("ListCost", row.list_cost),
                ("ContractedCost", row.contracted_cost),
            ):
                if amount is not None and _differs(amount, row.billed_cost):
                    self.report.note("credit-costs", row=n, column=column, value=amount)

    def _check_quantities(self, row: NormalizedRow) -> None:
        n, category = row.row, row.charge_category
        priced = row.pricing_quantity is not None and row.pricing_unit is not None
        if category == "Tax" and (row.pricing_quantity is not None or row.pricing_unit is not None):
            self.report.note("tax-pricing-quantity", row=n, column="PricingQuantity", value=row.pricing_quantity)
        if category in ("Usage", "Purchase") and row.charge_class != "Correction" and not priced:
            self.report.note("pricing-quantity-missing", row=n, column="PricingQuantity")
        if row.consumed_quantity is not None and category != "Usage":
            self.report.note("consumed-quantity", row=n, column="ConsumedQuantity", value=category)

    def _check_periods(self, row: NormalizedRow) -> None:
        n = row.row
        if row.charge_period_start >= row.charge_period_end:
            self.report.note("period-order", row=n, column="ChargePeriodStart", value=row.charge_period_start)
        if row.billing_period_start >= row.billing_period_end:
            self.report.note("period-order", row=n, column="BillingPeriodStart", value=row.billing_period_start)
        if row.charge_period_start < row.billing_period_start or row.charge_period_end > row.billing_period_end:
            self.report.note(
                "charge-outside-billing-period",
                row=n,
                column="ChargePeriodStart",
                value=f"{row.charge_period_start.isoformat()} not in [{row.billing_period_start.isoformat()}, "
                f"{row.billing_period_end.isoformat()})",
            )
