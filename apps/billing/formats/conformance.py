"""Conformance findings: FOCUS rules a file breaks, counted per rule, never a reason to reject a row.

Rule numbers refer to the invariants of FOCUS 1.2 as listed in the project's FOCUS notes (section 4).
"""

import re
from collections import Counter
from collections.abc import Callable, Sequence
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
    """Findings aggregated per rule, with the first few examples, for an import report.

    Notes arrive row by row, in increasing row order. A row whose rules all have their examples and
    whose columns have all been seen before can only add to counts, so such rows are tallied by their
    pattern of (rule, column) notes and added to the findings when they are read: a file whose rows
    repeat the same quirks costs one dictionary update per row instead of one per note.
    """

    EXAMPLES = 5
    PATTERNS = 4096  # distinct row patterns tallied before their counts are added to the findings

    def __init__(self) -> None:
        self._findings: dict[str, Finding] = {}
        self._row: int | None = None  # the row whose notes are pending
        self._keys: list[tuple[str, str | None]] = []  # (rule, column) of each pending note
        self._values: list[object] = []
        self._patterns: dict[tuple[tuple[str, str | None], ...], int] = {}  # steady pattern -> rows tallied
        self._flushed_row: int | None = None  # a row whose first notes were applied before it ended

    @property
    def findings(self) -> dict[str, Finding]:
        self._flush()
        return self._findings

    def start_row(self, row: int) -> None:
        """Make ``row`` the row that notes go to; the notes of the row before it are counted."""
        if row != self._row:
            if self._keys:
                self._end_row()
            self._row = row

    def appenders(self) -> tuple[Callable[[tuple[str, str | None]], None], Callable[[object], None]]:
        """A cheaper way to note on the current row (see start_row), for readers that note on every row.

        ``add_key((rule, column))`` followed by ``add_value(value)`` records what
        ``note(rule, row=<current row>, column=column, value=value)`` records.
        """
        return self._keys.append, self._values.append

    def note(self, rule: str, *, row: int | None, column: str | None = None, value: object = None) -> None:
        if row is None:  # a finding about the whole file
            self._flush()
            self._apply(rule, None, column, value)
            return
        if row != self._row:
            if self._keys:
                self._end_row()
            self._row = row
        self._keys.append((rule, column))
        self._values.append(value)

    def _apply(self, rule: str, row: int | None, column: str | None, value: object) -> None:
        finding = self._findings.get(rule)
        if finding is None:
            finding = self._findings[rule] = Finding(rule, RULES[rule])
        if row is None or row != finding._last_row:
            finding.rows += 1
            finding._last_row = row
        if column:
            finding.columns[column] += 1
        if len(finding.examples) < self.EXAMPLES:
            finding.examples.append(Example(row, column, None if value is None else show(value, 100)))

    def _end_row(self, *, partial: bool = False) -> None:
        """Add the pending row's notes to the findings, or tally them when only counts can change.

        ``partial``: the row may get more notes later, which are applied then; these are applied now,
        as a tallied part would make the row count twice.
        """
        keys, values = self._keys, self._values
        pattern = tuple(keys)
        tallied = self._patterns.get(pattern)
        if tallied is not None and self._row != self._flushed_row and not partial:
            self._patterns[pattern] = tallied + 1
        else:
            row = self._row
            for (rule, column), value in zip(keys, values, strict=True):
                self._apply(rule, row, column, value)
            if tallied is None and self._steady(pattern):
                if len(self._patterns) >= self.PATTERNS:
                    self._add_patterns()
                self._patterns[pattern] = 0
        keys.clear()
        values.clear()

    def _steady(self, pattern: tuple[tuple[str, str | None], ...]) -> bool:
        """Whether another row with these notes would change nothing but counts."""
        findings = self._findings
        for rule, column in pattern:
            finding = findings[rule]
            if len(finding.examples) < self.EXAMPLES or (column and column not in finding.columns):
                return False
        return True

    def _add_patterns(self) -> None:
        findings = self._findings
        for pattern, rows in self._patterns.items():
            if rows:
                for rule in dict.fromkeys(rule for rule, _ in pattern):
                    findings[rule].rows += rows
                for rule, column in pattern:
                    if column:
                        findings[rule].columns[column] += rows
        self._patterns.clear()

    def _flush(self) -> None:
        if self._keys:
            self._end_row(partial=True)
            self._flushed_row = self._row  # later notes of this row must not be tallied as a new row
        if self._patterns:
            self._add_patterns()

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


def _any_field(test: str, names: Sequence[str], constants: dict[str, Any]) -> Callable[[NormalizedRow], bool]:
    """Whether ``test`` holds for one of the named fields of a row, written as one expression.

    ``test`` uses {name} for the field and {i} for its position in ``names``; the field names are
    NormalizedRow's own. Every row runs these, and attribute access in a compiled expression costs a
    fraction of getattr() or attrgetter() in a loop.
    """
    expression = " or ".join(test.format(name=name, i=i) for i, name in enumerate(names))
    return eval(f"lambda row: {expression}", dict(constants))


# Whether some mandatory column is null, or some enumeration column holds a value outside its list.
_mandatory_null = _any_field("row.{name} is None", [name for _, name in _MANDATORY], {})
_enum_outside = _any_field(
    "(row.{name} is not None and row.{name} not in allowed_{i})",
    [name for _, name, _ in _ENUMS],
    {f"allowed_{i}": allowed for i, (_, _, allowed) in enumerate(_ENUMS)},
)


def _ulp(value: Decimal) -> Decimal:
    """One unit in the last place the value was written with: 0.0100 -> 0.0001."""
    return Decimal(1).scaleb(value.as_tuple().exponent)


# Each written value is rounded to its last digit, so up to half a unit there (carried through the
# product) is rounding, not a real difference: the comparison works at the scale the file writes.
# A difference within MIN_TOLERANCE is never one, so most rows need no look at the scale.
def _differs(actual: Decimal, expected: Decimal) -> bool:
    difference = abs(actual - expected)
    return difference > MIN_TOLERANCE and difference > (_ulp(actual) + _ulp(expected)) / 2


def _product_differs(total: Decimal, price: Decimal, quantity: Decimal) -> bool:
    difference = abs(total - price * quantity)
    if difference <= MIN_TOLERANCE:
        return False
    return difference > (abs(price) * _ulp(quantity) + abs(quantity) * _ulp(price) + _ulp(total)) / 2


class ConformanceChecker:
    """Checks each normalised row against the FOCUS invariants and records findings in a report."""

    def __init__(self, report: ConformanceReport) -> None:
        self.report = report
        self._service_categories: dict[str, str] = {}
        self._currency: str | None = None  # the last currency code found valid

    def check(self, row: NormalizedRow) -> None:
        note = self.report.note
        n = row.row
        if _mandatory_null(row):
            for column, name in _MANDATORY:
                if getattr(row, name) is None:
                    note("mandatory-null", row=n, column=column)
        if _enum_outside(row):
            for column, name, allowed in _ENUMS:
                value = getattr(row, name)
                if value is not None and value not in allowed:
                    note("enum-value", row=n, column=column, value=value)
        self._check_prices(row)
        self._check_quantities(row)
        currency = row.billing_currency
        if currency != self._currency:
            if _CURRENCY.fullmatch(currency):
                self._currency = currency
            else:
                note("currency-code", row=n, column="BillingCurrency", value=currency)
        service, category = row.service_name, row.service_category
        if service is not None and category is not None:
            first = self._service_categories.setdefault(service, category)
            if first != category:
                note(
                    "service-category", row=n, column="ServiceCategory", value=f"{service}: {category}, earlier {first}"
                )
        self._check_periods(row)

    def _check_prices(self, row: NormalizedRow) -> None:
        n, quantity = row.row, row.pricing_quantity
        if quantity is not None and row.charge_class != "Correction":
            total, price = row.list_cost, row.list_unit_price
            if total is not None and price is not None and _product_differs(total, price, quantity):
                self.report.note("list-cost", row=n, column="ListCost", value=total)
            total, price = row.contracted_cost, row.contracted_unit_price
            if total is not None and price is not None and _product_differs(total, price, quantity):
                self.report.note("contracted-cost", row=n, column="ContractedCost", value=total)
        if row.charge_category == "Credit":
            for column, amount in (
                ("EffectiveCost", row.effective_cost),
                ("ListCost", row.list_cost),
                ("ContractedCost", row.contracted_cost),
            ):
                if amount is not None and _differs(amount, row.billed_cost):
                    self.report.note("credit-costs", row=n, column=column, value=amount)

    def _check_quantities(self, row: NormalizedRow) -> None:
        n, category, quantity, unit = row.row, row.charge_category, row.pricing_quantity, row.pricing_unit
        if category == "Tax" and (quantity is not None or unit is not None):
            self.report.note("tax-pricing-quantity", row=n, column="PricingQuantity", value=quantity)
        if (
            (category == "Usage" or category == "Purchase")
            and (quantity is None or unit is None)
            and row.charge_class != "Correction"
        ):
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
