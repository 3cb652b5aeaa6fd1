"""The normalised billing row, the FOCUS column catalogue and the error types shared by every format."""

from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(slots=True)
class NormalizedRow:
    """One billing line item as FOCUS 1.2 columns (plus the nullable 1.3 additions), in snake_case.

    Money and quantities are ``Decimal``; date/times are timezone-aware UTC with half-open periods
    (``start`` inclusive, ``end`` exclusive); key-value columns are dicts. ``extras`` holds custom
    (``x_``) and unmapped source columns, with JSON-serialisable values.

    Build it with keyword arguments; only the FOCUS reader passes positional ones, in field order
    (with some 70 fields, keyword matching costs several times the construction itself).
    """

    row: int  # position in the source file, counting the header as row 1
    billed_cost: Decimal
    effective_cost: Decimal
    billing_currency: str
    billing_period_start: datetime
    billing_period_end: datetime
    charge_period_start: datetime
    charge_period_end: datetime
    list_cost: Decimal | None = None
    list_unit_price: Decimal | None = None
    contracted_cost: Decimal | None = None
    contracted_unit_price: Decimal | None = None
    charge_category: str | None = None
    charge_class: str | None = None
    charge_description: str | None = None
    charge_frequency: str | None = None
    service_name: str | None = None
    service_category: str | None = None
    service_subcategory: str | None = None
    provider_name: str | None = None
    publisher_name: str | None = None
    invoice_issuer_name: str | None = None
    invoice_id: str | None = None
    billing_account_id: str | None = None
    billing_account_name: str | None = None
    billing_account_type: str | None = None
    sub_account_id: str | None = None
    sub_account_name: str | None = None
    sub_account_type: str | None = None
    resource_id: str | None = None
    resource_name: str | None = None
    resource_type: str | None = None
    region_id: str | None = None
    region_name: str | None = None
    availability_zone: str | None = None
    tags: dict[str, Any] | None = None
    consumed_quantity: Decimal | None = None
    consumed_unit: str | None = None
    pricing_quantity: Decimal | None = None
    pricing_unit: str | None = None
    pricing_category: str | None = None
    pricing_currency: str | None = None
    pricing_currency_contracted_unit_price: Decimal | None = None
    pricing_currency_effective_cost: Decimal | None = None
    pricing_currency_list_unit_price: Decimal | None = None
    sku_id: str | None = None
    sku_price_id: str | None = None
    sku_meter: str | None = None
    sku_price_details: dict[str, Any] | None = None
    commitment_discount_id: str | None = None
    commitment_discount_name: str | None = None
    commitment_discount_type: str | None = None
    commitment_discount_category: str | None = None
    commitment_discount_status: str | None = None
    commitment_discount_quantity: Decimal | None = None
    commitment_discount_unit: str | None = None
    capacity_reservation_id: str | None = None
    capacity_reservation_status: str | None = None
    # FOCUS 1.3 additions
    allocated_method_id: str | None = None
    allocated_method_details: dict[str, Any] | None = None
    allocated_resource_id: str | None = None
    allocated_resource_name: str | None = None
    allocated_tags: dict[str, Any] | None = None
    contract_applied: dict[str, Any] | None = None
    service_provider_name: str | None = None
    host_provider_name: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def billing_period(self) -> tuple[datetime, datetime]:
        return self.billing_period_start, self.billing_period_end

    def as_focus_dict(self) -> dict[str, Any]:
        """The row keyed by FOCUS column names (``BilledCost``...), without ``row`` and ``extras``."""
        return {column: getattr(self, name) for column, name in FOCUS_COLUMNS.items()}


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


# FOCUS column name -> NormalizedRow field name ("BilledCost" -> "billed_cost").
FOCUS_COLUMNS: dict[str, str] = {
    _pascal(f.name): f.name for f in fields(NormalizedRow) if f.name not in ("row", "extras")
}

DECIMAL_COLUMNS = frozenset(
    {
        "BilledCost",
        "EffectiveCost",
        "ListCost",
        "ListUnitPrice",
        "ContractedCost",
        "ContractedUnitPrice",
        "ConsumedQuantity",
        "PricingQuantity",
        "PricingCurrencyContractedUnitPrice",
        "PricingCurrencyEffectiveCost",
        "PricingCurrencyListUnitPrice",
        "CommitmentDiscountQuantity",
    }
)
DATETIME_COLUMNS = frozenset({"BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"})
KEY_VALUE_COLUMNS = frozenset({"Tags", "SkuPriceDetails", "AllocatedMethodDetails", "AllocatedTags", "ContractApplied"})
FOCUS_1_3_COLUMNS = frozenset(
    {
        "AllocatedMethodId",
        "AllocatedMethodDetails",
        "AllocatedResourceId",
        "AllocatedResourceName",
        "AllocatedTags",
        "ContractApplied",
        "ServiceProviderName",
        "HostProviderName",
    }
)

SERVICE_CATEGORIES = (
    "AI and Machine Learning",
    "Analytics",
    "Business Applications",
    "Compute",
    "Databases",
    "Developer Tools",
    "Multicloud",
    "Identity",
    "Integration",
    "Internet of Things",
    "Management and Governance",
    "Media",
    "Migration",
    "Mobile",
    "Networking",
    "Security",
    "Storage",
    "Web",
    "Other",
)
ENUMERATIONS: dict[str, tuple[str, ...]] = {
    "ChargeCategory": ("Usage", "Purchase", "Tax", "Credit", "Adjustment"),
    "ChargeClass": ("Correction",),
    "ChargeFrequency": ("One-Time", "Recurring", "Usage-Based"),
    "PricingCategory": ("Standard", "Dynamic", "Committed", "Other"),
    "CommitmentDiscountCategory": ("Spend", "Usage"),
    "CommitmentDiscountStatus": ("Used", "Unused"),
    "CapacityReservationStatus": ("Used", "Unused"),
    "ServiceCategory": SERVICE_CATEGORIES,
}

# FOCUS rule 1: mandatory columns that may not be null.
MANDATORY_COLUMNS = (
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ServiceName",
    "ServiceCategory",
    "ProviderName",
    "PublisherName",
    "InvoiceIssuerName",
    "BillingAccountId",
)

DECIMAL_EXPECTED = "a decimal such as 12.50"
DATETIME_EXPECTED = "a date/time such as 2024-01-31T00:00:00Z"


def show(value: object, limit: int = 60) -> str:
    """A value quoted for a message, shortened so one bad cell cannot flood it."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one row of a file could not be read."""

    row: int
    column: str | None
    value: str | None
    problem: str
    expected: str

    def __str__(self) -> str:
        where = f"row {self.row}, column {self.column}" if self.column else f"row {self.row}"
        return f"{where}: {self.problem} (expected {self.expected})"


class CellError(Exception):
    """A cell that cannot be read; the reader turns it into a RowError with the row number."""

    def __init__(self, column: str, value: object, problem: str, expected: str) -> None:
        super().__init__(problem)
        self.column = column
        self.value = None if value is None else str(value)
        self.problem = problem
        self.expected = expected

    def at(self, row: int) -> RowError:
        return RowError(row, self.column, self.value, self.problem, self.expected)


class BillingFileError(Exception):
    """The whole file is rejected.

    ``row`` counts the header as row 1, as a spreadsheet shows a CSV file (Parquet files are numbered
    the same way); it is None when the problem is not tied to a row. ``errors`` lists every invalid row
    found before reading stopped; the other attributes describe the first of them.
    """

    MESSAGE_ERRORS = 5  # further row errors spelled out in str(); all of them stay in .errors

    def __init__(
        self,
        filename: str,
        problem: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: str | None = None,
        expected: str | None = None,
        errors: tuple[RowError, ...] = (),
        stopped_early: bool = False,
    ) -> None:
        self.filename = filename
        self.problem = problem
        self.row = row
        self.column = column
        self.value = value
        self.expected = expected
        self.errors = errors
        self.stopped_early = stopped_early
        super().__init__(self._message())

    @classmethod
    def from_row_errors(cls, filename: str, errors: list[RowError], *, stopped_early: bool) -> "BillingFileError":
        first = errors[0]
        return cls(
            filename,
            first.problem,
            row=first.row,
            column=first.column,
            value=first.value,
            expected=first.expected,
            errors=tuple(errors),
            stopped_early=stopped_early,
        )

    def _message(self) -> str:
        where = self.filename
        if self.row is not None:
            where += f" row {self.row}"
        if self.column:
            where += f", column {self.column}"
        text = f"{where}: {self.problem}"
        if self.expected:
            text += f" (expected {self.expected})"
        more = self.errors[1:]
        if more:
            text += f"; {len(more)} more error{'s' if len(more) > 1 else ''}: "
            text += "; ".join(str(error) for error in more[: self.MESSAGE_ERRORS])
            if len(more) > self.MESSAGE_ERRORS:
                text += "; ..."
        if self.stopped_early:
            text += f" (reading stopped after {len(self.errors)} errors)"
        return text
