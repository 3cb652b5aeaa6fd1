"""Small provider-native billing files for the format tests, generated instead of committed.

Column lists follow each provider's documentation: the AWS CUR data dictionary (legacy ``category/Field``
names), the CUR 2.0 table dictionary (snake_case names, tags in a ``resource_tags`` map), Microsoft's cost
details fields for Enterprise Agreement and Microsoft Customer Agreement, and Google's detailed usage
export schema. Values come from a seeded random generator, so a seed always gives the same file. Every
file spans two billing periods (January and February 2024), several days, credits, refunds, tax and tags.

Cells are kept as the text the file holds ("" for null), so tests can compute expected totals from the
raw columns without going through the reader.
"""

import calendar
import csv
import gzip
import io
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

MONTHS = ((2024, 1), (2024, 2))
DAYS = (1, 9, 17, 28)
HOURS = (0, 7, 15, 23)


@dataclass
class Table:
    columns: list[str]
    rows: list[dict[str, str]] = field(default_factory=list)

    def add(self, cells: dict[str, str]) -> dict[str, str]:
        unknown = set(cells) - set(self.columns)
        assert not unknown, f"not in the column list: {unknown}"
        row = dict.fromkeys(self.columns, "") | cells
        self.rows.append(row)
        return row


def money(rng: random.Random, low: float, high: float, places: int = 6) -> Decimal:
    """A random amount with at most ``places`` decimals."""
    scale = 10**places
    return Decimal(rng.randint(round(low * scale), round(high * scale))).scaleb(-places)


def text(amount: Decimal) -> str:
    return format(amount, "f")  # never "1E-7": exports write plain decimals


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=UTC)
    return start, start + timedelta(days=calendar.monthrange(year, month)[1])


def write_csv(table: Table, path: Path, *, compress: bool = False, bom: bool = False) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows([row[column] for column in table.columns] for row in table.rows)
    data = (("\ufeff" if bom else "") + buffer.getvalue()).encode("utf-8")
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def _timestamp(value: str) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace(" UTC", "+00:00").replace("Z", "+00:00"))


def write_parquet(
    table: Table,
    path: Path,
    *,
    doubles: tuple[str, ...] = (),
    timestamps: tuple[str, ...] = (),
    maps: tuple[str, ...] = (),
) -> Path:
    """Parquet with the given columns typed as the provider types them (costs double, periods timestamps)."""
    arrays = {}
    for column in table.columns:
        values = [row[column] for row in table.rows]
        if column in doubles:
            arrays[column] = pa.array([float(v) if v else None for v in values], pa.float64())
        elif column in timestamps:
            arrays[column] = pa.array([_timestamp(v) for v in values], pa.timestamp("ms", tz="UTC"))
        elif column in maps:
            items = [list(json.loads(v).items()) if v else None for v in values]
            arrays[column] = pa.array(items, pa.map_(pa.string(), pa.string()))
        else:
            arrays[column] = pa.array([v or None for v in values], pa.string())
    pq.write_table(pa.table(arrays), path)
    return path


def _column_list(documented: str) -> list[str]:
    """Column names as a provider's documentation lists them, separated by whitespace."""
    return documented.split()


# --- AWS Cost and Usage Report (legacy) ---------------------------------------------------------------

AWS_CUR_LEGACY_COLUMNS = _column_list("""
    identity/LineItemId identity/TimeInterval bill/InvoiceId bill/InvoicingEntity bill/BillingEntity
    bill/BillType bill/PayerAccountId bill/BillingPeriodStartDate bill/BillingPeriodEndDate
    lineItem/UsageAccountId lineItem/LineItemType lineItem/UsageStartDate lineItem/UsageEndDate
    lineItem/ProductCode lineItem/UsageType lineItem/Operation lineItem/AvailabilityZone lineItem/ResourceId
    lineItem/UsageAmount lineItem/CurrencyCode lineItem/UnblendedRate lineItem/UnblendedCost
    lineItem/NetUnblendedCost lineItem/LineItemDescription lineItem/LegalEntity product/ProductName
    product/region product/location product/sku pricing/RateCode pricing/publicOnDemandCost
    pricing/publicOnDemandRate pricing/term pricing/unit reservation/ReservationARN reservation/EffectiveCost
    reservation/UnusedAmortizedUpfrontFeeForBillingPeriod reservation/UnusedRecurringFee
    reservation/TotalReservedUnits savingsPlan/SavingsPlanARN savingsPlan/SavingsPlanEffectiveCost
    savingsPlan/TotalCommitmentToDate savingsPlan/UsedCommitment resourceTags/user:env resourceTags/user:team
    resourceTags/aws:createdBy
""")
AWS_ACCOUNTS = ("444455556666", "777788889999")
AWS_RI_ARN = "arn:aws:ec2:us-west-2:111122223333:reserved-instances/4f2a9c1e-0000-4000-8000-000000000001"
AWS_SP_ARN = "arn:aws:savingsplans::111122223333:savingsplan/7d1e2f3a-0000-4000-8000-000000000002"
EDP_DISCOUNT = Decimal("0.97")  # NetUnblendedCost after an enterprise discount
EC2 = {
    "lineItem/ProductCode": "AmazonEC2",
    "product/ProductName": "Amazon Elastic Compute Cloud",
    "lineItem/UsageType": "USW2-BoxUsage:m5.large",
    "lineItem/Operation": "RunInstances",
    "lineItem/AvailabilityZone": "us-west-2a",
    "lineItem/UsageAmount": "1",
    "product/sku": "8VCNEHQMSCQS4P39",
    "pricing/RateCode": "8VCNEHQMSCQS4P39.JRTCKXETXF.6YS6EN2CT7",
    "pricing/term": "OnDemand",
    "pricing/unit": "Hrs",
    "pricing/publicOnDemandRate": "0.096",
    "pricing/publicOnDemandCost": "0.096",
    "resourceTags/aws:createdBy": "IAMUser:AIDAEXAMPLE:deploy",
}
EC2_MONTHLY = {"lineItem/ProductCode": "AmazonEC2", "product/ProductName": "Amazon Elastic Compute Cloud"}
S3 = {
    "lineItem/ProductCode": "AmazonS3",
    "product/ProductName": "Amazon Simple Storage Service",
    "lineItem/UsageType": "USW2-TimedStorage-ByteHrs",
    "lineItem/Operation": "StandardStorage",
    "lineItem/ResourceId": "shop-assets",
    "lineItem/UnblendedRate": "0.023",
    "pricing/publicOnDemandRate": "0.023",
    "pricing/term": "OnDemand",
    "pricing/unit": "GB-Mo",
    "product/sku": "WP9ANXZGBYYSGJEA",
    "resourceTags/user:team": "web",
}


def _aws_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")  # legacy CUR writes milliseconds and Z


def aws_cur_legacy(seed: int = 11) -> Table:
    rng = random.Random(seed)
    table = Table(list(AWS_CUR_LEGACY_COLUMNS))

    def add(
        period: tuple[datetime, datetime], start: datetime, end: datetime, line_type: str, cost: str, *cells: dict
    ) -> dict[str, str]:
        row = {
            "identity/LineItemId": f"li-{len(table.rows) + 1:06d}",
            "identity/TimeInterval": f"{_aws_time(start)}/{_aws_time(end)}",
            "bill/InvoiceId": f"EUINUS24-{period[0]:%m}0001",
            "bill/InvoicingEntity": "Amazon Web Services, Inc.",
            "bill/BillingEntity": "AWS",
            "bill/BillType": "Anniversary",
            "bill/PayerAccountId": "111122223333",
            "bill/BillingPeriodStartDate": _aws_time(period[0]),
            "bill/BillingPeriodEndDate": _aws_time(period[1]),
            "lineItem/UsageAccountId": rng.choice(AWS_ACCOUNTS),
            "lineItem/LineItemType": line_type,
            "lineItem/UsageStartDate": _aws_time(start),
            "lineItem/UsageEndDate": _aws_time(end),
            "lineItem/CurrencyCode": "USD",
            "lineItem/UnblendedCost": cost,
            "lineItem/NetUnblendedCost": text((Decimal(cost) * EDP_DISCOUNT).quantize(Decimal("1E-10"))),
            "lineItem/LegalEntity": "Amazon Web Services, Inc.",
            "product/region": "us-west-2",
            "product/location": "US West (Oregon)",
        }
        for group in cells:
            row |= group
        return table.add(row)

    for year, month in MONTHS:
        period = month_bounds(year, month)
        for day in DAYS:
            for hour in HOURS:
                start = datetime(year, month, day, hour, tzinfo=UTC)
                end = start + timedelta(hours=1)
                tags = {"resourceTags/user:env": rng.choice(["prod", "dev", ""]), "resourceTags/user:team": "shop"}
                add(period, start, end, "Usage", "0.096", EC2, tags, {"lineItem/UnblendedRate": "0.096"})
                # Reserved and Savings Plan usage: the amortised rate sits in the commitment's own column.
                reserved = {"reservation/ReservationARN": AWS_RI_ARN, "pricing/term": "Reserved"}
                ri_cost = {"reservation/EffectiveCost": text(money(rng, 0.05, 0.07))}
                add(period, start, end, "DiscountedUsage", "0", EC2, reserved, ri_cost)
                covered = {
                    "savingsPlan/SavingsPlanARN": AWS_SP_ARN,
                    "lineItem/UsageType": "USW2-BoxUsage:m5.xlarge",
                    "lineItem/UnblendedRate": "0.192",
                    "pricing/publicOnDemandRate": "0.192",
                    "pricing/publicOnDemandCost": "0.192",
                }
                sp_cost = {"savingsPlan/SavingsPlanEffectiveCost": text(money(rng, 0.12, 0.14))}
                add(period, start, end, "SavingsPlanCoveredUsage", "0.192", EC2, covered, sp_cost)
                negation = {"pricing/publicOnDemandCost": "", "lineItem/UnblendedRate": "-0.192"}
                add(period, start, end, "SavingsPlanNegation", "-0.192", EC2, covered, negation)
                gigabytes = money(rng, 0.5, 40, 8)
                s3_cost = text((gigabytes * Decimal("0.023")).quantize(Decimal("1E-10")))
                usage = {"lineItem/UsageAmount": text(gigabytes), "pricing/publicOnDemandCost": s3_cost}
                add(period, start, end, "Usage", s3_cost, S3, usage)

        def monthly(line_type: str, cost: str, *cells: dict[str, str], period=period) -> dict[str, str]:
            return add(period, period[0], period[1], line_type, cost, EC2_MONTHLY, *cells)

        monthly(
            "RIFee",
            "21.6",
            {
                "lineItem/UsageAmount": "720",
                "pricing/unit": "Hrs",
                "reservation/ReservationARN": AWS_RI_ARN,
                "reservation/TotalReservedUnits": "720",
                "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod": text(money(rng, 1, 5)),
                "reservation/UnusedRecurringFee": text(money(rng, 0.5, 3)),
            },
        )
        if month == 1:
            upfront = {"bill/BillType": "Purchase", "reservation/ReservationARN": AWS_RI_ARN}
            monthly("Fee", "350", upfront, {"lineItem/UsageAmount": "1", "pricing/unit": "Quantity"})
        used = text(money(rng, 60, 99))
        commitment = {
            "lineItem/ProductCode": "ComputeSavingsPlans",
            "product/ProductName": "Savings Plans for AWS Compute usage",
            "lineItem/UsageAmount": "1",
            "pricing/unit": "Hrs",
            "savingsPlan/SavingsPlanARN": AWS_SP_ARN,
            "savingsPlan/TotalCommitmentToDate": "100",
            "savingsPlan/UsedCommitment": used,
        }
        monthly("SavingsPlanRecurringFee", "100", commitment)
        monthly("Tax", text(money(rng, 1, 20)), {"lineItem/LineItemDescription": "Tax for product code AmazonEC2"})
        credit = monthly("Credit", text(-money(rng, 1, 10)), {"lineItem/LineItemDescription": "AWS Activate Credits"})
        credit["lineItem/NetUnblendedCost"] = ""  # the reader must fall back to UnblendedCost
        monthly("Refund", text(-money(rng, 0.5, 5)), S3, {"bill/BillType": "Refund", "lineItem/UnblendedRate": ""})
    return table


# --- AWS CUR 2.0 ----------------------------------------------------------------------------------------

# CUR 2.0 names of the legacy columns above (AWS's CUR 2.0 table dictionary); tags go to resource_tags.
AWS_CUR2_NAMES = {
    "identity/LineItemId": "identity_line_item_id",
    "identity/TimeInterval": "identity_time_interval",
    "bill/InvoiceId": "bill_invoice_id",
    "bill/InvoicingEntity": "bill_invoicing_entity",
    "bill/BillingEntity": "bill_billing_entity",
    "bill/BillType": "bill_bill_type",
    "bill/PayerAccountId": "bill_payer_account_id",
    "bill/BillingPeriodStartDate": "bill_billing_period_start_date",
    "bill/BillingPeriodEndDate": "bill_billing_period_end_date",
    "lineItem/UsageAccountId": "line_item_usage_account_id",
    "lineItem/LineItemType": "line_item_line_item_type",
    "lineItem/UsageStartDate": "line_item_usage_start_date",
    "lineItem/UsageEndDate": "line_item_usage_end_date",
    "lineItem/ProductCode": "line_item_product_code",
    "lineItem/UsageType": "line_item_usage_type",
    "lineItem/Operation": "line_item_operation",
    "lineItem/AvailabilityZone": "line_item_availability_zone",
    "lineItem/ResourceId": "line_item_resource_id",
    "lineItem/UsageAmount": "line_item_usage_amount",
    "lineItem/CurrencyCode": "line_item_currency_code",
    "lineItem/UnblendedRate": "line_item_unblended_rate",
    "lineItem/UnblendedCost": "line_item_unblended_cost",
    "lineItem/NetUnblendedCost": "line_item_net_unblended_cost",
    "lineItem/LineItemDescription": "line_item_line_item_description",
    "lineItem/LegalEntity": "line_item_legal_entity",
    "product/ProductName": "product_product_name",
    "product/region": "product_region_code",
    "product/location": "product_location",
    "product/sku": "product_sku",
    "pricing/RateCode": "pricing_rate_code",
    "pricing/publicOnDemandCost": "pricing_public_on_demand_cost",
    "pricing/publicOnDemandRate": "pricing_public_on_demand_rate",
    "pricing/term": "pricing_term",
    "pricing/unit": "pricing_unit",
    "reservation/ReservationARN": "reservation_reservation_a_r_n",
    "reservation/EffectiveCost": "reservation_effective_cost",
    "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod": (
        "reservation_unused_amortized_upfront_fee_for_billing_period"
    ),
    "reservation/UnusedRecurringFee": "reservation_unused_recurring_fee",
    "reservation/TotalReservedUnits": "reservation_total_reserved_units",
    "savingsPlan/SavingsPlanARN": "savings_plan_savings_plan_a_r_n",
    "savingsPlan/SavingsPlanEffectiveCost": "savings_plan_savings_plan_effective_cost",
    "savingsPlan/TotalCommitmentToDate": "savings_plan_total_commitment_to_date",
    "savingsPlan/UsedCommitment": "savings_plan_used_commitment",
}
AWS_CUR2_TAG_KEYS = {
    "resourceTags/user:env": "user_env",
    "resourceTags/user:team": "user_team",
    "resourceTags/aws:createdBy": "aws_createdBy",
}
# Parquet types of CUR 2.0: amounts are double, dates timestamp, tags a map.
AWS_CUR2_DOUBLES = (
    "line_item_usage_amount",
    "line_item_unblended_rate",
    "line_item_unblended_cost",
    "line_item_net_unblended_cost",
    "pricing_public_on_demand_cost",
    "pricing_public_on_demand_rate",
    "reservation_effective_cost",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
    "reservation_total_reserved_units",
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
)
AWS_CUR2_TIMESTAMPS = tuple(name for column, name in AWS_CUR2_NAMES.items() if column.endswith("Date"))


def aws_cur2(seed: int = 11) -> Table:
    """The legacy report's line items as CUR 2.0 writes them (the same charges, so the same totals)."""
    table = Table([*AWS_CUR2_NAMES.values(), "resource_tags"])
    for row in aws_cur_legacy(seed).rows:
        # CUR 2.0 lists a tag key on a row only when the row has a value for it.
        tags = {key: row[column] for column, key in AWS_CUR2_TAG_KEYS.items() if row[column]}
        cells = {name: row[column] for column, name in AWS_CUR2_NAMES.items()}
        table.add(cells | {"resource_tags": json.dumps(tags) if tags else ""})
    return table


def write_aws_cur2_parquet(table: Table, path: Path) -> Path:
    return write_parquet(table, path, doubles=AWS_CUR2_DOUBLES, timestamps=AWS_CUR2_TIMESTAMPS, maps=("resource_tags",))


# --- Azure cost details -----------------------------------------------------------------------------------

AZURE_EA_COLUMNS = _column_list("""
    InvoiceSectionName AccountName AccountOwnerId SubscriptionId SubscriptionName ResourceGroup ResourceLocation
    Date ProductName MeterCategory MeterSubCategory MeterId MeterName MeterRegion UnitOfMeasure Quantity
    EffectivePrice CostInBillingCurrency CostCenter ConsumedService ResourceId Tags OfferId AdditionalInfo
    ServiceInfo1 ServiceInfo2 ResourceName ReservationId ReservationName UnitPrice ProductOrderId
    ProductOrderName Term PublisherType PublisherName ChargeType Frequency PricingModel AvailabilityZone
    BillingAccountId BillingAccountName BillingCurrencyCode BillingPeriodStartDate BillingPeriodEndDate
    BillingProfileId BillingProfileName InvoiceSectionId IsAzureCreditEligible PartNumber PayGPrice PlanName
    ServiceFamily CostAllocationRuleName benefitId benefitName
""")
AZURE_MCA_COLUMNS = _column_list("""
    invoiceId previousInvoiceId billingAccountId billingAccountName billingProfileId billingProfileName
    invoiceSectionId invoiceSectionName resellerName resellerMpnId costCenter billingPeriodEndDate
    billingPeriodStartDate servicePeriodEndDate servicePeriodStartDate date serviceFamily productOrderId
    productOrderName consumedService meterId meterName meterCategory meterSubCategory meterRegion ProductId
    ProductName SubscriptionId subscriptionName publisherType publisherId publisherName resourceGroupName
    ResourceId resourceLocation location effectivePrice quantity unitOfMeasure chargeType billingCurrency
    pricingCurrency costInBillingCurrency costInUsd exchangeRatePricingToBilling exchangeRateDate serviceInfo1
    serviceInfo2 additionalInfo tags PayGPrice frequency term reservationId reservationName pricingModel
    unitPrice costAllocationRuleName benefitId benefitName provider paygCostInBillingCurrency paygCostInUsd
""")
AZURE_SUBSCRIPTION = "9b2a6c1d-0000-4000-8000-00000000000a"
AZURE_VM = f"/subscriptions/{AZURE_SUBSCRIPTION}/resourceGroups/shop-rg/providers/Microsoft.Compute/virtualMachines/"
AZURE_STORAGE = (
    f"/subscriptions/{AZURE_SUBSCRIPTION}/resourceGroups/data-rg/providers/Microsoft.Storage/storageAccounts/"
)
AZURE_RESERVATION = (
    "/providers/Microsoft.Capacity/reservationOrders/11111111-0000-4000-8000-000000000001"
    "/reservations/22222222-0000-4000-8000-000000000002"
)
AZURE_SAVINGS_PLAN = (
    "/providers/Microsoft.BillingBenefits/savingsPlanOrders/33333333-0000-4000-8000-000000000003"
    "/savingsPlans/44444444-0000-4000-8000-000000000004"
)


@dataclass
class AzureCharge:
    """One cost details line before it is written in EA or MCA spelling."""

    day: datetime
    charge_type: str
    pricing_model: str
    cost: Decimal
    meter_category: str = ""
    consumed_service: str = ""
    product: str = ""
    quantity: str = ""
    unit: str = ""
    unit_price: str = ""
    frequency: str = "UsageBased"
    benefit_id: str = ""
    benefit_name: str = ""
    resource: str = ""
    location: str = "westeurope"
    tags: dict[str, str] | None = None
    publisher_type: str = "Azure"
    publisher: str = "Microsoft"


def _azure_charges(rng: random.Random, dataset: str) -> list[AzureCharge]:
    """Both months' charges; the actual and amortized datasets of one seed differ the way Azure's do."""
    amortized = dataset == "amortized"
    commitments = (("Reservation", AZURE_RESERVATION, "RI D4s v5"), ("SavingsPlan", AZURE_SAVINGS_PLAN, "Compute SP"))
    charges = []
    for year, month in MONTHS:
        for day_number in DAYS:
            day = datetime(year, month, day_number, tzinfo=UTC)
            hours = Decimal(rng.choice([12, 20, 24]))
            vm = {"meter_category": "Virtual Machines", "consumed_service": "Microsoft.Compute"}
            charges.append(
                AzureCharge(
                    day,
                    "Usage",
                    "OnDemand",
                    hours / 10 * Decimal("0.96"),  # priced per block of 10 hours
                    product="Virtual Machines D2s v5 - Linux",
                    quantity=text(hours),
                    unit="10 Hours",
                    unit_price="0.96",
                    resource=AZURE_VM + "web-1",
                    tags={"env": "prod", " team": "web"},
                    **vm,
                )
            )
            gigabytes = money(rng, 1, 500, 4)
            charges.append(
                AzureCharge(
                    day,
                    "Usage",
                    "OnDemand",
                    gigabytes * Decimal("0.0208"),
                    meter_category="Storage",
                    consumed_service="Microsoft.Storage",
                    product="Blob Storage Hot LRS",
                    quantity=text(gigabytes),
                    unit="1 GB/Month",
                    unit_price="0.0208",
                    resource=AZURE_STORAGE + "shopdata",
                    tags={"env": "prod", "team": "data"},
                )
            )
            # Commitment-covered usage is free in the actual dataset and carries its amortised share otherwise.
            for model, benefit, name in commitments:
                benefit_cells = {"benefit_id": benefit, "benefit_name": name, **vm}
                used = money(rng, 1.5, 3.0)
                charges.append(
                    AzureCharge(
                        day,
                        "Usage",
                        model,
                        used if amortized else Decimal(0),
                        product="Virtual Machines D4s v5 - Linux",
                        quantity="24",
                        unit="1 Hour",
                        resource=AZURE_VM + f"batch-{model.lower()}",
                        tags={"env": "prod", "team": "batch"},
                        **benefit_cells,
                    )
                )
                unused = money(rng, 0.1, 0.5)  # drawn for both datasets, so they describe the same charges
                if amortized:
                    charges.append(AzureCharge(day, f"Unused{model}", model, unused, **benefit_cells))
        first = datetime(year, month, 1, tzinfo=UTC)
        purchase = {"frequency": "Recurring", "location": "Unassigned", "consumed_service": "Microsoft.Capacity"}
        # Commitment purchases and refunds appear in the actual dataset only.
        refund = -money(rng, 5, 20)
        if not amortized:
            for (model, benefit, name), cost in zip(commitments, (Decimal("55.80"), Decimal(90)), strict=True):
                charges.append(
                    AzureCharge(first, "Purchase", model, cost, benefit_id=benefit, benefit_name=name, **purchase)
                )
            if month == 2:
                model, benefit, name = commitments[0]
                charges.append(
                    AzureCharge(first, "Refund", model, refund, benefit_id=benefit, benefit_name=name, **purchase)
                )
        marketplace = {"publisher_type": "Marketplace", "publisher": "Contoso Ltd", "location": "Unassigned"}
        product = "Contoso Analytics - Standard plan"
        charges.append(
            AzureCharge(
                first,
                "Purchase",
                "OnDemand",
                money(rng, 10, 40, 2),
                "SaaS",
                product=product,
                frequency="OneTime",
                **marketplace,
            )
        )
        charges.append(AzureCharge(first, "Tax", "OnDemand", money(rng, 2, 9, 2), frequency=""))
        charges.append(AzureCharge(first, "Credit", "OnDemand", -money(rng, 5, 15, 2), frequency=""))
    return charges


def _azure_tags(tags: dict[str, str] | None, *, braces: bool) -> str:
    if not tags:
        return ""
    body = ",".join(f"{json.dumps(key)}: {json.dumps(value)}" for key, value in tags.items())
    return "{" + body + "}" if braces else body  # EA exports drop the outer braces


def azure_cost_details(seed: int = 5, *, agreement: str = "ea", dataset: str = "actual") -> Table:
    """An EA (``agreement="ea"``) or MCA cost details file of the ``actual`` or ``amortized`` dataset."""
    rng = random.Random(seed)
    ea = agreement == "ea"
    table = Table(list(AZURE_EA_COLUMNS if ea else AZURE_MCA_COLUMNS))
    # Public EA samples write US dates; Azure end dates are inclusive (the last day of the month).
    day_format = "%m/%d/%Y" if ea else "%Y-%m-%d"
    for c in _azure_charges(rng, dataset):
        first, end = month_bounds(c.day.year, c.day.month)
        last = end - timedelta(days=1)
        resource_group = c.resource.split("/")[4] if c.resource else ""
        common = {"SubscriptionId": AZURE_SUBSCRIPTION, "ResourceId": c.resource, "ProductName": c.product}
        common["PayGPrice"] = c.unit_price
        if ea:
            cells = {
                "SubscriptionName": "Shop production",
                "ResourceGroup": resource_group,
                "ResourceLocation": c.location,
                "ResourceName": c.resource.rsplit("/", 1)[-1],
                "Date": c.day.strftime(day_format),
                "MeterCategory": c.meter_category,
                "UnitOfMeasure": c.unit,
                "Quantity": c.quantity,
                "CostInBillingCurrency": text(c.cost),
                "ConsumedService": c.consumed_service,
                "Tags": _azure_tags(c.tags, braces=False),
                "UnitPrice": c.unit_price,
                "PublisherType": c.publisher_type,
                "PublisherName": c.publisher,
                "ChargeType": c.charge_type,
                "Frequency": c.frequency,
                "PricingModel": c.pricing_model,
                "BillingAccountId": "8611537",
                "BillingAccountName": "Contoso Retail",
                "BillingCurrencyCode": "EUR",
                "BillingPeriodStartDate": first.strftime(day_format),
                "BillingPeriodEndDate": last.strftime(day_format),
                "BillingProfileId": "8611537",
                "BillingProfileName": "Contoso Retail",
                "benefitId": c.benefit_id,
                "benefitName": c.benefit_name,
            }
        else:
            cells = {
                "invoiceId": f"G0{c.day:%Y%m}0001",
                "billingAccountId": "a1b2c3d4:e5f6a7b8_2019-05-31",
                "billingAccountName": "Contoso Retail",
                "billingProfileId": "ABCD-EFGH-IJK-LMN",
                "billingProfileName": "Contoso Retail EU",
                "billingPeriodStartDate": first.strftime(day_format),
                "billingPeriodEndDate": last.strftime(day_format),
                "date": c.day.strftime(day_format),
                "consumedService": c.consumed_service,
                "meterCategory": c.meter_category,
                "subscriptionName": "Shop production",
                "publisherType": c.publisher_type,
                "publisherName": c.publisher,
                "resourceGroupName": resource_group,
                "resourceLocation": c.location,
                "quantity": c.quantity,
                "unitOfMeasure": c.unit,
                "chargeType": c.charge_type,
                "billingCurrency": "USD",
                "pricingCurrency": "USD",
                "costInBillingCurrency": text(c.cost),
                "exchangeRatePricingToBilling": "1",
                "tags": _azure_tags(c.tags, braces=True),
                "frequency": c.frequency,
                "pricingModel": c.pricing_model,
                "unitPrice": c.unit_price,
                "paygCostInBillingCurrency": text(c.cost) if c.unit_price else "",
                "benefitId": c.benefit_id,
                "benefitName": c.benefit_name,
            }
        table.add(common | cells)
    return table


# --- Google Cloud detailed usage export ---------------------------------------------------------------

PACIFIC = ZoneInfo("America/Los_Angeles")
_LABELS = pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())]))
_TIME = pa.timestamp("us", tz="UTC")


def _struct(*names: str, **typed: pa.DataType) -> pa.DataType:
    return pa.struct([(name, pa.string()) for name in names] + list(typed.items()))


GCP_SCHEMA = pa.schema(
    [
        ("billing_account_id", pa.string()),
        ("service", _struct("id", "description")),
        ("sku", _struct("id", "description")),
        ("usage_start_time", _TIME),
        ("usage_end_time", _TIME),
        ("project", _struct("id", "number", "name", labels=_LABELS)),
        ("labels", _LABELS),
        ("system_labels", _LABELS),
        ("location", _struct("location", "country", "region", "zone")),
        ("resource", _struct("name", "global_name")),
        ("cost", pa.float64()),
        ("currency", pa.string()),
        ("currency_conversion_rate", pa.float64()),
        ("usage", _struct("unit", "pricing_unit", amount=pa.float64(), amount_in_pricing_units=pa.float64())),
        ("credits", pa.list_(_struct("name", "full_name", "id", "type", amount=pa.float64()))),
        ("invoice", _struct("month")),
        ("cost_type", pa.string()),
        ("cost_at_list", pa.float64()),
        ("price", _struct("unit", effective_price=pa.float64())),
        ("export_time", _TIME),
    ]
)


def _dotted(name: str, kind: pa.DataType) -> list[str]:
    if pa.types.is_struct(kind):
        return [n for i in range(kind.num_fields) for n in _dotted(f"{name}.{kind.field(i).name}", kind.field(i).type)]
    return [name]


# A flattening query's CSV: nested fields as dotted columns, repeated fields as JSON text.
GCP_CSV_COLUMNS = [column for f in GCP_SCHEMA for column in _dotted(f.name, f.type)]
GCP_SERVICES = (
    ("6F81-5844-456A", "Compute Engine", "CP-E2-CORE", "E2 Instance Core", "hour", 3600),
    ("95FF-2EF5-5EA1", "Cloud Storage", "E5F0-6A5D-7BAD", "Standard Storage Europe Multi-region", "gibibyte month", 1),
    ("24E6-581D-38E5", "BigQuery", "3362-E469-6BEA", "Analysis", "tebibyte", 1),
)
CREDIT_TYPES = (
    ("Sustained use discount", "SUSTAINED_USAGE_DISCOUNT"),
    ("Free tier", "FREE_TIER"),
    ("Committed use discount: CPU", "COMMITTED_USAGE_DISCOUNT"),
)
WEB_1 = "//compute.googleapis.com/projects/shop-prod/zones/europe-west1-b/instances/web-1"


def _bq_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")  # BigQuery's CSV form


def gcp_detailed(seed: int = 3) -> list[dict[str, Any]]:
    """Export rows as nested records, the shape BigQuery holds them in (credit amounts are floats, as there)."""
    rng = random.Random(seed)
    project = {
        "id": "shop-prod",
        "number": "123456789012",
        "name": "Shop prod",
        "labels": [{"key": "team", "value": "shop"}],
    }
    moments = [datetime(y, m, d, h, tzinfo=UTC) for y, m in MONTHS for d in DAYS for h in HOURS[:2]]
    # 03:00 UTC on 1 February is still January in Pacific time: it belongs to January's invoice.
    moments.append(datetime(2024, 2, 1, 3, tzinfo=UTC))

    def record(start: datetime, cost: Decimal, **fields: Any) -> dict[str, Any]:
        return {
            "billing_account_id": "01A2B3-C4D5E6-F7A8B9",
            "service": {"id": "6F81-5844-456A", "description": "Compute Engine"},
            "sku": {"id": "", "description": ""},
            "usage_start_time": _bq_time(start),
            "usage_end_time": _bq_time(start + timedelta(hours=1)),
            "project": project,
            "labels": [],
            "system_labels": [],
            "location": {"location": "europe-west1", "country": "BE", "region": "europe-west1", "zone": ""},
            "resource": {"name": "", "global_name": ""},
            "cost": text(cost),
            "currency": "EUR",
            "currency_conversion_rate": "0.92",
            "usage": {"amount": "", "unit": "", "amount_in_pricing_units": "", "pricing_unit": ""},
            "credits": [],
            "invoice": {"month": start.astimezone(PACIFIC).strftime("%Y%m")},
            "cost_type": "regular",
            "cost_at_list": text(cost),
            "price": {"effective_price": "", "unit": ""},
            "export_time": _bq_time(start + timedelta(hours=5)),
        } | fields

    records = []
    for start in moments:
        for service_id, service, sku_id, sku, unit, per_unit in GCP_SERVICES:
            pricing_units = money(rng, 0.2, 2, 3)
            price = money(rng, 0.01, 0.05, 4)
            cost = (pricing_units * price).quantize(Decimal("1E-6"))
            credits = []
            if rng.random() < 0.5:
                name, kind = rng.choice(CREDIT_TYPES)
                amount = -float(money(rng, 0, float(cost) / 2))
                credits.append({"name": name, "full_name": name, "id": "", "type": kind, "amount": amount})
            usage = {
                "amount": text(pricing_units * per_unit),
                "unit": "seconds" if per_unit == 3600 else unit,
                "amount_in_pricing_units": text(pricing_units),
                "pricing_unit": unit,
            }
            labels = [{"key": "env", "value": rng.choice(["prod", "dev"])}, {"key": " team", "value": "web"}]
            records.append(
                record(
                    start,
                    cost,
                    service={"id": service_id, "description": service},
                    sku={"id": sku_id, "description": sku},
                    labels=labels,
                    system_labels=[{"key": "compute.googleapis.com/machine_spec", "value": "e2-standard-2"}],
                    location={
                        "location": "europe-west1",
                        "country": "BE",
                        "region": "europe-west1",
                        "zone": "europe-west1-b",
                    },
                    resource={"name": "web-1", "global_name": WEB_1},
                    usage=usage,
                    credits=credits,
                    cost_at_list=text((cost * Decimal("1.1")).quantize(Decimal("1E-6"))),
                    price={"effective_price": text(price), "unit": unit},
                )
            )
    for year, month in MONTHS:
        start = datetime(year, month, 28, 12, tzinfo=UTC)
        records.append(record(start, money(rng, 1, 5), cost_type="tax"))
        records.append(record(start, -money(rng, 0.5, 2), cost_type="adjustment"))
        records.append(record(start, Decimal("0.000001"), cost_type="rounding_error"))
    return records


def _leaf(record: dict[str, Any], column: str) -> Any:
    value: Any = record
    for key in column.split("."):
        value = value[key]
    return value


def write_gcp_csv(records: list[dict[str, Any]], path: Path, *, compress: bool = False) -> Path:
    table = Table(GCP_CSV_COLUMNS)
    for record in records:
        leaves = {column: _leaf(record, column) for column in GCP_CSV_COLUMNS}
        table.add({column: json.dumps(v) if isinstance(v, list) else v for column, v in leaves.items()})
    return write_csv(table, path, compress=compress)


def _typed(value: Any, kind: pa.DataType) -> Any:
    """A generator value in the Parquet type of its column ("" is null, as BigQuery leaves it)."""
    if pa.types.is_struct(kind):
        return {
            kind.field(i).name: _typed(value.get(kind.field(i).name, ""), kind.field(i).type)
            for i in range(kind.num_fields)
        }
    if pa.types.is_list(kind):
        return [_typed(item, kind.value_type) for item in value]
    if value == "":
        return None
    if pa.types.is_floating(kind):
        return float(value)
    if pa.types.is_timestamp(kind):
        return _timestamp(value)
    return value


def write_gcp_parquet(records: list[dict[str, Any]], path: Path) -> Path:
    rows = [{f.name: _typed(record[f.name], f.type) for f in GCP_SCHEMA} for record in records]
    pq.write_table(pa.Table.from_pylist(rows, schema=GCP_SCHEMA), path)
    return path
