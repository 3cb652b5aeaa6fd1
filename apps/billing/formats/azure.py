"""Azure cost details exports, Enterprise Agreement and Microsoft Customer Agreement, actual or amortized.

Each row is mapped with Microsoft's FOCUS conversion rules, which work for both datasets. A FOCUS
dataset needs both files: keep every row of the amortized file and, from the actual file, only the
rows for which ``keep_from_actual_cost`` is true (commitment purchases and refunds).
"""

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar

from .base import NormalizedRow
from .mapper import FormatMapper
from .values import Cells

ZERO = Decimal(0)
COMMITMENT_MODELS = ("Reservation", "SavingsPlan")
COMMITMENT_USAGE = ("Usage", "UnusedReservation", "UnusedSavingsPlan")
COMMITMENT_PURCHASES = ("Purchase", "Refund")
CHARGE_CATEGORIES = {
    "Usage": "Usage",
    "Purchase": "Purchase",
    "Credit": "Credit",
    "Tax": "Tax",
    "UnusedReservation": "Usage",
    "UnusedSavingsPlan": "Usage",
    "Refund": "Purchase",
}
FREQUENCIES = {"OneTime": "One-Time", "Recurring": "Recurring", "UsageBased": "Usage-Based"}
PRICING_CATEGORIES = {"OnDemand": "Standard", "Spot": "Dynamic", "Reservation": "Committed", "SavingsPlan": "Committed"}
# ConsumedService (lower-cased resource provider) -> ServiceCategory.
SERVICE_CATEGORIES = {
    "microsoft.compute": "Compute",
    "microsoft.containerservice": "Compute",
    "microsoft.containerinstance": "Compute",
    "microsoft.batch": "Compute",
    "microsoft.web": "Web",
    "microsoft.cdn": "Networking",
    "microsoft.network": "Networking",
    "microsoft.storage": "Storage",
    "microsoft.sql": "Databases",
    "microsoft.dbforpostgresql": "Databases",
    "microsoft.dbformysql": "Databases",
    "microsoft.documentdb": "Databases",
    "microsoft.cache": "Databases",
    "microsoft.synapse": "Analytics",
    "microsoft.databricks": "Analytics",
    "microsoft.datafactory": "Integration",
    "microsoft.eventhub": "Integration",
    "microsoft.servicebus": "Integration",
    "microsoft.logic": "Integration",
    "microsoft.cognitiveservices": "AI and Machine Learning",
    "microsoft.machinelearningservices": "AI and Machine Learning",
    "microsoft.insights": "Management and Governance",
    "microsoft.operationalinsights": "Management and Governance",
    "microsoft.recoveryservices": "Management and Governance",
    "microsoft.keyvault": "Security",
    "microsoft.security": "Security",
    "microsoft.aad": "Identity",
    "microsoft.devices": "Internet of Things",
}
# "10 Hours" -> a price per block of 10 hours (Microsoft's x_PricingBlockSize).
_BLOCK = re.compile(r"(\d+)\s+(\S.*)", re.ASCII)


def _pricing_block(unit_of_measure: str | None) -> tuple[int, str | None]:
    if unit_of_measure and (match := _BLOCK.fullmatch(unit_of_measure.strip())) and int(match[1]) > 0:
        return int(match[1]), match[2]
    return 1, unit_of_measure


def keep_from_actual_cost(row: NormalizedRow) -> bool:
    """Whether a row of an Azure *actual* cost file belongs next to the amortized file's rows."""
    return row.extras.get("x_ChargeType") in COMMITMENT_PURCHASES and row.extras.get("x_PricingModel") in (
        COMMITMENT_MODELS
    )


class AzureMapper(FormatMapper):
    case_insensitive = True  # exports mix PascalCase and camelCase names
    aliases = {
        "CostInBillingCurrency": ("Cost",),  # older EA exports
        "BenefitId": ("ReservationId",),
        "BenefitName": ("ReservationName",),
        "ResourceGroup": ("ResourceGroupName",),
    }
    placeholders = frozenset({"-2", "Unassigned"})
    account_columns: ClassVar[tuple[str, str]]

    def map(self, cells: Cells) -> NormalizedRow:
        c = cells
        charge_type = c.text("ChargeType", required=True, expected="an Azure charge type such as Usage")
        model = (c.text("PricingModel") or "").replace(" ", "")
        commitment = model in COMMITMENT_MODELS
        cost = c.decimal("CostInBillingCurrency", required=True)
        # Amortized files spread commitment purchases over the usage they cover; that usage is not billed
        # again. Unused commitment counts as such usage, as the FinOps toolkit's converter treats it.
        billed = ZERO if commitment and charge_type in COMMITMENT_USAGE else cost
        effective = ZERO if commitment and charge_type in COMMITMENT_PURCHASES else cost
        category = CHARGE_CATEGORIES.get(charge_type, "Adjustment")
        charge_start = c.datetime("Date", required=True)
        period_end = c.datetime("BillingPeriodEndDate", required=True)
        quantity = c.decimal("Quantity")
        block, unit = _pricing_block(c.text("UnitOfMeasure"))
        pricing_quantity = None if quantity is None or category == "Tax" else quantity / block
        unit_price = c.decimal("UnitPrice")
        list_unit_price, list_cost = self.list_prices(c, pricing_quantity)
        if category in ("Credit", "Tax"):
            list_cost = contracted_cost = billed  # no price to multiply; FOCUS rule 6 for credits
        else:
            contracted_cost = unit_price * pricing_quantity if None not in (unit_price, pricing_quantity) else None
        location = c.text("ResourceLocation")
        account_id, account_name = self.account_columns
        return NormalizedRow(
            row=c.row,
            billed_cost=billed,
            effective_cost=effective,
            billing_currency=c.text(self.currency_column, required=True, expected="a currency code such as USD"),
            billing_period_start=c.datetime("BillingPeriodStartDate", required=True),
            billing_period_end=c.next_day("BillingPeriodEndDate", period_end),  # Azure end dates are inclusive
            charge_period_start=charge_start,
            charge_period_end=c.next_day("Date", charge_start),
            list_cost=list_cost,
            list_unit_price=list_unit_price,
            contracted_cost=contracted_cost,
            contracted_unit_price=unit_price,
            charge_category=category,
            charge_class="Correction" if charge_type == "Refund" else None,
            charge_description=c.text("ProductName"),
            charge_frequency=self._frequency(c),
            service_name=c.text("MeterCategory") or c.text("ConsumedService"),
            service_category=SERVICE_CATEGORIES.get((c.text("ConsumedService") or "").lower(), "Other"),
            provider_name="Microsoft",
            publisher_name=c.text("PublisherName") or "Microsoft",
            invoice_issuer_name=c.text("PartnerName") or "Microsoft",
            invoice_id=c.text("InvoiceId"),
            billing_account_id=c.text(account_id),
            billing_account_name=c.text(account_name),
            sub_account_id=c.text("SubscriptionId"),
            sub_account_name=c.text("SubscriptionName"),
            resource_id=c.text("ResourceId"),
            resource_name=self.resource_name(c),
            region_id=location.lower().replace(" ", "") if location else None,
            region_name=location,
            availability_zone=c.text("AvailabilityZone"),
            tags=c.key_values("Tags"),
            consumed_quantity=quantity if charge_type == "Usage" else None,
            consumed_unit=unit if charge_type == "Usage" else None,
            pricing_quantity=pricing_quantity,
            pricing_unit=unit if pricing_quantity is not None else None,
            pricing_category=PRICING_CATEGORIES.get(model),
            sku_id=self.sku_id(c),
            sku_meter=c.text("MeterName"),
            **self._commitment(c, charge_type, commitment),
            extras=self._extras(c, charge_type, model, block),
        )

    def list_prices(self, c: Cells, pricing_quantity: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
        """ListUnitPrice and ListCost; EA files carry only the pay-as-you-go unit price."""
        price = c.decimal("PayGPrice")
        return price, (price * pricing_quantity if None not in (price, pricing_quantity) else None)

    def resource_name(self, c: Cells) -> str | None:
        return c.text("ResourceName")

    def sku_id(self, c: Cells) -> str | None:
        return None

    @staticmethod
    def _frequency(c: Cells) -> str | None:
        frequency = c.text("Frequency")
        return FREQUENCIES.get(frequency, frequency) if frequency else None

    @staticmethod
    def _commitment(c: Cells, charge_type: str, commitment: bool) -> dict[str, Any]:
        benefit_id = c.text("BenefitId")
        lowered = (benefit_id or "").lower()
        if "/microsoft.capacity/" in lowered:
            kind, category = "Reservation", "Usage"
        elif "/microsoft.billingbenefits/" in lowered:
            kind, category = "Savings Plan", "Spend"
        else:
            kind = category = None
        if charge_type in ("UnusedReservation", "UnusedSavingsPlan"):
            status = "Unused"
        else:
            status = "Used" if commitment and charge_type == "Usage" else None
        return {
            "commitment_discount_id": benefit_id,
            "commitment_discount_name": c.text("BenefitName"),
            "commitment_discount_type": kind,
            "commitment_discount_category": category,
            "commitment_discount_status": status,
        }

    @staticmethod
    def _extras(c: Cells, charge_type: str, model: str, block: int) -> dict[str, Any]:
        extras = {
            "x_ChargeType": charge_type,
            "x_PricingModel": model or None,
            "x_ConsumedService": c.text("ConsumedService"),
            "x_ResourceGroupName": c.text("ResourceGroup"),
            "x_SkuMeterId": c.text("MeterId"),
            "x_PricingBlockSize": block,
        }
        extras.update(c.extras)
        return {key: value for key, value in extras.items() if value is not None}


class AzureEaMapper(AzureMapper):
    key = "azure_ea"
    label = "Azure cost details, Enterprise Agreement"
    required = (
        "Date",
        "CostInBillingCurrency",
        "BillingCurrencyCode",
        "BillingPeriodStartDate",
        "BillingPeriodEndDate",
        "ChargeType",
    )
    signature = ("Date", "CostInBillingCurrency", "BillingCurrencyCode")
    currency_column = "BillingCurrencyCode"
    account_columns = ("BillingAccountId", "BillingAccountName")


class AzureMcaMapper(AzureMapper):
    key = "azure_mca"
    label = "Azure cost details, Microsoft Customer Agreement"
    required = (
        "Date",
        "CostInBillingCurrency",
        "BillingCurrency",
        "BillingPeriodStartDate",
        "BillingPeriodEndDate",
        "ChargeType",
    )
    signature = ("Date", "CostInBillingCurrency", "BillingCurrency", "BillingProfileId")
    currency_column = "BillingCurrency"
    account_columns = ("BillingProfileId", "BillingProfileName")

    @classmethod
    def matches(cls, header: Sequence[str]) -> bool:
        # EA files may carry BillingProfileId too; their currency column is BillingCurrencyCode.
        return super().matches(header) and not AzureEaMapper.matches(header)

    def list_prices(self, c: Cells, pricing_quantity: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
        price = c.decimal("PayGPrice")
        rate = c.decimal("ExchangeRatePricingToBilling")
        if price is not None and rate is not None:
            price *= rate  # PayGPrice is in the pricing currency
        return price, c.decimal("PaygCostInBillingCurrency")

    def resource_name(self, c: Cells) -> str | None:
        # MCA has no ResourceName; Microsoft's conversion keeps the last segment of the resource ID.
        resource_id = c.text("ResourceId") or ""
        return resource_id.rstrip("/").rsplit("/", 1)[-1] or None

    def sku_id(self, c: Cells) -> str | None:
        return c.text("ProductId")
