"""AWS Cost and Usage Reports: legacy CUR (``lineItem/UnblendedCost``) and CUR 2.0 (``line_item_unblended_cost``).

Both share one mapping written with the legacy names; CUR 2.0 spells each name in snake_case
(``reservation/ReservationARN`` -> ``reservation_reservation_a_r_n``) and carries tags in a
``resource_tags`` map instead of one ``resourceTags/...`` column per tag.
"""

import re
from abc import abstractmethod
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from .base import NormalizedRow
from .conformance import ConformanceReport
from .mapper import FormatMapper
from .values import Cells, Columns

ZERO = Decimal(0)

# lineItem/LineItemType -> ChargeCategory (FOCUS 1.0 and later: credits and refunds are Credit).
CHARGE_CATEGORIES = {
    "Usage": "Usage",
    "DiscountedUsage": "Usage",
    "SavingsPlanCoveredUsage": "Usage",
    "SavingsPlanNegation": "Usage",
    "BundledDiscount": "Usage",
    "Discount": "Usage",
    "DistributorDiscount": "Usage",
    "EdpDiscount": "Usage",
    "PrivateRateDiscount": "Usage",
    "SppDiscount": "Usage",
    "Tax": "Tax",
    "Fee": "Purchase",
    "RIFee": "Purchase",
    "SavingsPlanUpfrontFee": "Purchase",
    "SavingsPlanRecurringFee": "Purchase",
    "Credit": "Credit",
    "Refund": "Credit",
}
COVERED_USAGE = ("DiscountedUsage", "SavingsPlanCoveredUsage")
PRICING_CATEGORIES = {"ondemand": "Standard", "on-demand": "Standard", "reserved": "Committed", "spot": "Dynamic"}
SERVICE_CATEGORIES = {
    "AmazonEC2": "Compute",
    "AWSLambda": "Compute",
    "AmazonECS": "Compute",
    "AmazonEKS": "Compute",
    "AmazonS3": "Storage",
    "AmazonEFS": "Storage",
    "AmazonGlacier": "Storage",
    "AmazonRDS": "Databases",
    "AmazonDynamoDB": "Databases",
    "AmazonElastiCache": "Databases",
    "AmazonRedshift": "Analytics",
    "AmazonAthena": "Analytics",
    "AmazonVPC": "Networking",
    "AWSDataTransfer": "Networking",
    "AmazonCloudFront": "Networking",
    "AmazonRoute53": "Networking",
    "AWSELB": "Networking",
    "AmazonCloudWatch": "Management and Governance",
    "AWSCloudTrail": "Management and Governance",
    "AWSConfig": "Management and Governance",
    "AmazonSageMaker": "AI and Machine Learning",
    "AmazonBedrock": "AI and Machine Learning",
    "AmazonSNS": "Integration",
    "AWSQueueService": "Integration",
    "awskms": "Security",
    "AWSSecretsManager": "Security",
    "AmazonGuardDuty": "Security",
    "ComputeSavingsPlans": "Compute",
}
_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def _net_or_gross(c: Cells, column: str, *, required: bool = False) -> Decimal | None:
    """An amount after negotiated discounts when the report has its Net column, else the gross amount."""
    category, _, name = column.partition("/")
    net = c.decimal(f"{category}/Net{name}")
    return net if net is not None else c.decimal(column, required=required)


def cur2_name(legacy: str) -> str:
    """CUR 2.0's name for a legacy CUR column: ``lineItem/UnblendedCost`` -> ``line_item_unblended_cost``."""
    return "_".join(_CAMEL_BOUNDARY.sub("_", part).lower() for part in legacy.split("/"))


def _legacy_tag_key(key: str) -> str:
    if key.startswith("user_"):
        return key.removeprefix("user_")
    return "aws:" + key.removeprefix("aws_") if key.startswith("aws_") else key


class AwsCurMapper(FormatMapper):
    required = (
        "lineItem/UnblendedCost",
        "lineItem/LineItemType",
        "lineItem/UsageStartDate",
        "lineItem/UsageEndDate",
        "lineItem/CurrencyCode",
        "bill/BillingPeriodStartDate",
        "bill/BillingPeriodEndDate",
    )
    signature = ("lineItem/UnblendedCost", "lineItem/LineItemType")
    currency_column = "lineItem/CurrencyCode"
    aliases = {"product/region": ("product/regionCode",)}

    def map(self, cells: Cells) -> NormalizedRow:
        c = cells
        line_type = c.text("lineItem/LineItemType", required=True, expected="an AWS line item type such as Usage")
        unblended = c.decimal("lineItem/UnblendedCost", required=True)
        billed = _net_or_gross(c, "lineItem/UnblendedCost", required=True)
        category = CHARGE_CATEGORIES.get(line_type, "Adjustment")
        product_code = c.text("lineItem/ProductCode")
        amount = c.decimal("lineItem/UsageAmount")
        unit = c.text("pricing/unit")
        reserved_units = c.decimal("reservation/TotalReservedUnits")
        priced = category in ("Usage", "Purchase")
        if category in ("Tax", "Credit"):
            # No price applies: the charge is its own list and contracted cost (FOCUS rule 6 for credits).
            list_cost = contracted_cost = billed
        else:
            list_cost, contracted_cost = self._list_cost(c, amount), unblended
        return NormalizedRow(
            row=c.row,
            billed_cost=billed,
            effective_cost=self._effective_cost(c, line_type, billed),
            billing_currency=c.text("lineItem/CurrencyCode", required=True, expected="a currency code such as USD"),
            billing_period_start=c.datetime("bill/BillingPeriodStartDate", required=True),
            billing_period_end=c.datetime("bill/BillingPeriodEndDate", required=True),
            charge_period_start=c.datetime("lineItem/UsageStartDate", required=True),
            charge_period_end=c.datetime("lineItem/UsageEndDate", required=True),
            list_cost=list_cost,
            list_unit_price=c.decimal("pricing/publicOnDemandRate"),
            contracted_cost=contracted_cost,
            contracted_unit_price=c.decimal("lineItem/UnblendedRate"),
            charge_category=category,
            charge_description=c.text("lineItem/LineItemDescription"),
            charge_frequency=self._frequency(line_type, category, c.text("bill/BillType")),
            service_name=c.text("product/ProductName") or product_code,
            service_category=SERVICE_CATEGORIES.get(product_code or "", "Other"),
            provider_name="AWS",
            publisher_name=c.text("lineItem/LegalEntity"),
            invoice_issuer_name=c.text("bill/InvoicingEntity"),
            invoice_id=c.text("bill/InvoiceId"),
            billing_account_id=c.text("bill/PayerAccountId"),
            billing_account_name=c.text("bill/PayerAccountName"),
            sub_account_id=c.text("lineItem/UsageAccountId"),
            sub_account_name=c.text("lineItem/UsageAccountName"),
            resource_id=c.text("lineItem/ResourceId"),
            region_id=c.text("product/region"),
            region_name=c.text("product/location"),
            availability_zone=c.text("lineItem/AvailabilityZone"),
            tags=self.tags(c),
            consumed_quantity=amount if category == "Usage" else None,
            consumed_unit=unit if category == "Usage" else None,
            pricing_quantity=(amount if reserved_units is None else reserved_units) if priced else None,
            pricing_unit=unit if priced else None,
            pricing_category=self._pricing_category(c, line_type),
            sku_id=c.text("product/sku"),
            sku_price_id=c.text("pricing/RateCode") or c.text("pricing/RateId"),
            **self._commitment(c, line_type),
            extras=self._extras(c, line_type, product_code),
        )

    @staticmethod
    def _effective_cost(c: Cells, line_type: str, billed: Decimal) -> Decimal:
        """Amortised cost: commitment fees spread over the usage they cover, unused parts on the fee rows.

        Like BilledCost it is net of negotiated discounts: each amount comes from its ``Net`` column
        (reservation/NetEffectiveCost...) when the report has one.
        """
        match line_type:
            case "SavingsPlanCoveredUsage":
                return _net_or_gross(c, "savingsPlan/SavingsPlanEffectiveCost", required=True)
            case "DiscountedUsage":
                return _net_or_gross(c, "reservation/EffectiveCost", required=True)
            case "RIFee":
                unused_upfront = _net_or_gross(c, "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod") or ZERO
                return unused_upfront + (_net_or_gross(c, "reservation/UnusedRecurringFee") or ZERO)
            case "SavingsPlanRecurringFee":
                total = c.decimal("savingsPlan/TotalCommitmentToDate", required=True)
                return total - c.decimal("savingsPlan/UsedCommitment", required=True)
            case "SavingsPlanNegation" | "SavingsPlanUpfrontFee":
                return ZERO
            case "Fee" if c.text("reservation/ReservationARN"):
                return ZERO  # a reservation's upfront fee, already amortised into its DiscountedUsage rows
        return billed

    @staticmethod
    def _list_cost(c: Cells, amount: Decimal | None) -> Decimal | None:
        public_cost = c.decimal("pricing/publicOnDemandCost")
        rate = c.decimal("pricing/publicOnDemandRate")
        if public_cost is None and rate is not None and amount is not None:
            return rate * amount
        return public_cost

    @staticmethod
    def _frequency(line_type: str, category: str, bill_type: str | None) -> str | None:
        if category == "Usage":
            return "Usage-Based"
        if line_type in ("RIFee", "SavingsPlanRecurringFee"):
            return "Recurring"
        if bill_type in ("Purchase", "Refund") or line_type in ("Fee", "SavingsPlanUpfrontFee", "Credit", "Refund"):
            return "One-Time"
        return "Recurring" if bill_type == "Anniversary" else None

    @staticmethod
    def _pricing_category(c: Cells, line_type: str) -> str | None:
        if line_type in COVERED_USAGE:
            return "Committed"
        if "SpotUsage" in (c.text("lineItem/UsageType") or ""):
            return "Dynamic"
        term = c.text("pricing/term") or c.text("pricing/purchaseOption") or ""
        return PRICING_CATEGORIES.get(term.lower())

    @staticmethod
    def _commitment(c: Cells, line_type: str) -> dict[str, Any]:
        if arn := c.text("savingsPlan/SavingsPlanARN"):
            kind, category = "Savings Plan", "Spend"
        elif arn := c.text("reservation/ReservationARN"):
            kind, category = "Reserved Instance", "Usage"
        else:
            return {}
        return {
            "commitment_discount_id": arn,
            "commitment_discount_type": kind,
            "commitment_discount_category": category,
            "commitment_discount_status": "Used" if line_type in COVERED_USAGE else None,
        }

    @staticmethod
    def _extras(c: Cells, line_type: str, product_code: str | None) -> dict[str, Any]:
        extras = {
            "x_LineItemType": line_type,
            "x_ServiceCode": product_code,
            "x_UsageType": c.text("lineItem/UsageType"),
            "x_Operation": c.text("lineItem/Operation"),
            "x_LineItemId": c.text("identity/LineItemId"),
            "x_BillType": c.text("bill/BillType"),
        }
        return {key: value for key, value in extras.items() if value is not None}

    @abstractmethod
    def tags(self, c: Cells) -> dict[str, Any] | None: ...


class AwsCurLegacyMapper(AwsCurMapper):
    key = "aws_cur_legacy"
    label = "AWS Cost and Usage Report (legacy CUR)"
    TAG_PREFIX = "resourceTags/"

    def __init__(self, header: Sequence[str], report: ConformanceReport, *, text_only: bool = False) -> None:
        super().__init__(header, report, text_only=text_only)
        # resourceTags/user:team -> "team"; AWS-defined tags keep their prefix: resourceTags/aws:createdBy.
        self._tag_columns = [
            (column, column[len(self.TAG_PREFIX) :].removeprefix("user:"))
            for column in header
            if column.startswith(self.TAG_PREFIX)
        ]

    def tags(self, c: Cells) -> dict[str, Any] | None:
        pairs = [(key, value) for column, key in self._tag_columns if (value := c.text(column)) is not None]
        return c.merge_pairs("Tags", pairs) if pairs else None


class AwsCur2Mapper(AwsCurMapper):
    key = "aws_cur2"
    label = "AWS CUR 2.0 (Data Exports)"

    @classmethod
    def find_columns(cls, header: Sequence[str]) -> Columns:
        return Columns(header, aliases=cls.aliases, rename=cur2_name)

    def tags(self, c: Cells) -> dict[str, Any] | None:
        tags = c.key_values("resource_tags")
        if not tags:
            return None
        # Keys as the legacy report names them: user_team -> team, aws_createdBy -> aws:createdBy.
        return {_legacy_tag_key(key): value for key, value in tags.items()}
