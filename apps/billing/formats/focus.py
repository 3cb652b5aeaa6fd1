"""Native FOCUS files (1.0 to 1.3, from any provider or tool)."""

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from .base import (
    DATETIME_COLUMNS,
    DECIMAL_COLUMNS,
    ENUMERATIONS,
    FOCUS_1_3_COLUMNS,
    FOCUS_COLUMNS,
    KEY_VALUE_COLUMNS,
    MANDATORY_COLUMNS,
    NormalizedRow,
)
from .conformance import ConformanceReport
from .mapper import FormatMapper
from .values import Cells

_SINCE_1_2 = frozenset({"InvoiceId", "BillingAccountType", "SubAccountType", "PricingCurrency"})
_SINCE_1_1 = frozenset({"ServiceSubcategory", "SkuMeter", "SkuPriceDetails", "CapacityReservationId"})


def focus_version(header: Sequence[str]) -> str:
    """The lowest FOCUS version whose columns the header uses (files do not state their version)."""
    columns = set(header)
    if columns & FOCUS_1_3_COLUMNS:
        return "1.3"
    if columns & _SINCE_1_2:
        return "1.2"
    if columns & _SINCE_1_1:
        return "1.1"
    return "1.0"


class FocusMapper(FormatMapper):
    key = "focus"
    label = "FOCUS 1.0-1.3"
    required = (
        "BilledCost",
        "EffectiveCost",
        "BillingCurrency",
        "BillingPeriodStart",
        "BillingPeriodEnd",
        "ChargePeriodStart",
        "ChargePeriodEnd",
    )
    signature = ("BilledCost", "ChargePeriodStart", "BillingPeriodStart")
    currency_column = "BillingCurrency"
    # Placeholders the spec and Azure's FocusCost export use for "no value".
    placeholders = frozenset({"-2", "Unassigned", "Not Applicable"})
    focus_rules = True

    def __init__(self, header: Sequence[str], report: ConformanceReport) -> None:
        super().__init__(header, report)
        self._header = list(header)
        self._readers = [(FOCUS_COLUMNS[c], self._reader(c)) for c in header if c in FOCUS_COLUMNS]
        self._extra = [c for c in header if c not in FOCUS_COLUMNS]
        for column in self._extra:
            if not column.startswith("x_"):
                report.note("column-prefix", row=None, column=column)
        for column in MANDATORY_COLUMNS:
            if column not in self._header:
                report.note("mandatory-column-missing", row=None, column=column)

    def _reader(self, column: str) -> Callable[[], Any]:
        c, required = self.cells, column in self.required
        if column in DECIMAL_COLUMNS:
            return partial(c.decimal, column, required=required)
        if column in DATETIME_COLUMNS:
            return partial(c.datetime, column, required=required)
        if column in KEY_VALUE_COLUMNS:
            return partial(c.key_values, column)
        if column in ENUMERATIONS:
            return partial(c.enum, column, ENUMERATIONS[column])
        # BillingCurrency is the one required text column.
        return partial(c.text, column, required=required, expected="a currency code such as USD")

    @property
    def source_version(self) -> str:
        return focus_version(self._header)

    def map(self, cells: Cells) -> NormalizedRow:
        values = {name: read() for name, read in self._readers}
        extras = {column: value for column in self._extra if (value := cells.text(column)) is not None}
        extras.update(cells.extras)
        return NormalizedRow(row=cells.row, extras=extras, **values)
