"""Demo billing for Meridian Markets: a year of cloud cost in two provider formats, and units of service.

Written as real export files under ``VAR_DIR/demo/billing`` and imported through the same path as real
data (``services.billing_import_path``):

- **AWS**, a FOCUS 1.2 export (Parquet, one file per billing period) of the payer account: price
  forecasting, real-time promotions and the ML platform (its GPU fleet under a savings plan, so
  BilledCost and EffectiveCost differ), a shared network and security account, an untagged sandbox,
  and a few credits;
- **Azure**, an Enterprise Agreement cost details export, amortized dataset (CSV with US dates and tags
  without braces, as EA writes them): shelf vision and smart cart, their store-edge devices tagged with
  the store, a shared observability workspace, an untagged AKS system pool matched by a resource rule,
  and an untagged storage account that stays unallocated.

Costs grow through the year, follow the week (weekend peaks for promotions and carts) and carry a
little noise; promotions' production fleet spikes on a recent day, so the anomaly list has something to
show. The 12 full months before this one and this month to date (today included) are generated;
random draws are seeded by line and day, so a second run the same day writes identical files and the
import is skipped. Units of service come as one ``service,date,units`` CSV.
"""

import calendar
import csv
import hashlib
import io
import json
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.utils import timezone

from apps.catalog.models import Environment, Location, Service

from . import services
from .models import AllocationRule, BillingImport, BillingSource, SeenFile

CURRENCY = "USD"
SIX = Decimal("0.000001")
WEEK_FLAT = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
WEEK_RETAIL = (0.92, 0.92, 0.94, 0.97, 1.06, 1.22, 1.12)  # Monday first: shoppers come at the weekend
WEEK_BATCH = (1.0, 1.0, 1.0, 1.0, 1.0, 0.96, 0.96)

AWS_PAYER = "111122223333"
AWS_ACCOUNTS = {
    "210000000001": "pricing-prod",
    "210000000002": "pricing-nonprod",
    "210000000003": "ml-platform",
    "210000000004": "shared-network",
    "210000000005": "sandbox",
}
AWS_SAVINGS_PLAN = "arn:aws:savingsplans::111122223333:savingsplan/5c0f1e2d-0000-4000-8000-00000000a10g"
AZURE_SUBSCRIPTIONS = {
    "prod": ("7d3c1a90-4f1e-4c57-9a61-2b9e0c5d0001", "retail-vision-prod"),
    "nonprod": ("7d3c1a90-4f1e-4c57-9a61-2b9e0c5d0002", "retail-vision-nonprod"),
}
SHELF_PILOT_STORES = [5, 400, 812, 1455, 1802]
CART_PILOT_STORES = [12, 377, 990, 1234, 1888]


@dataclass(frozen=True)
class Line:
    """One resource billed every day: its daily cost at the start of the year and how it moves."""

    key: str
    provider_service: str  # FOCUS ServiceName / Azure MeterCategory
    category: str  # FOCUS ServiceCategory
    resource: str
    resource_type: str
    account: str  # AWS account id or Azure subscription key
    base: float  # daily cost in the first month, in USD
    unit: str
    unit_price: Decimal
    tags: dict = field(default_factory=dict)
    weekly: tuple = WEEK_FLAT
    growth: float = 0.015  # per month
    committed: bool = False  # covered by the savings plan: billed through its monthly fee
    consumed_service: str = ""  # Azure resource provider


def _aws(key, service, category, resource, rtype, account, base, unit, price, tags, **kw) -> Line:
    return Line(key, service, category, resource, rtype, account, base, unit, Decimal(price), tags, **kw)


EC2, SAGEMAKER, S3 = "Amazon Elastic Compute Cloud", "Amazon SageMaker", "Amazon Simple Storage Service"
DYNAMO, CACHE, EKS = "Amazon DynamoDB", "Amazon ElastiCache", "Amazon Elastic Kubernetes Service"


def _tags(service: str | None, env: str | None, **more) -> dict:
    tags = {"service": service, "env": env, **more}
    return {k: v for k, v in tags.items() if v is not None}


AWS_LINES = [
    _aws("pf-batch", EC2, "Compute", "i-0pf4batchfleet", "Instance", "210000000001", 610, "Hours", "0.768",
         _tags("price-forecast", "prod", team="pricing-ml"), weekly=WEEK_BATCH),
    _aws("pf-train", SAGEMAKER, "AI and Machine Learning", "pf-elasticity-training", "Training job",
         "210000000001", 240, "Hours", "4.608", _tags("price-forecast", "prod", team="pricing-ml")),
    _aws("pf-s3", S3, "Storage", "meridian-pf-features", "Bucket", "210000000001", 85, "GB-Month", "0.023",
         _tags("price-forecast", "prod", team="pricing-ml"), growth=0.03),
    _aws("pf-uat", EC2, "Compute", "i-0pf4uat", "Instance", "210000000002", 58, "Hours", "0.384",
         _tags("price-forecast", "uat", team="pricing-ml")),
    _aws("pf-dev", EC2, "Compute", "i-0pf4dev", "Instance", "210000000002", 44, "Hours", "0.192",
         _tags("price-forecast", "dev", team="pricing-ml")),
    _aws("pf-test", EC2, "Compute", "i-0pf4test", "Instance", "210000000002", 26, "Hours", "0.192",
         _tags("price-forecast", "test", team="pricing-ml")),
    _aws("promo-eks", EC2, "Compute", "eks-promotions-prod-nodes", "Instance", "210000000001", 380, "Hours",
         "0.384", _tags("promotions", "prod", team="pricing-ml"), weekly=WEEK_RETAIL, growth=0.02),
    _aws("promo-ddb", DYNAMO, "Databases", "promo-offers-table", "Table", "210000000001", 140, "WriteRequestUnits",
         "0.00000125", _tags("promotions", "prod", team="pricing-ml"), weekly=WEEK_RETAIL, growth=0.02),
    _aws("promo-cache", CACHE, "Databases", "promo-session-cache", "Cache cluster", "210000000001", 70, "Hours",
         "0.364", _tags("promotions", "prod", team="pricing-ml")),
    _aws("promo-uat", EC2, "Compute", "i-0promouat", "Instance", "210000000002", 41, "Hours", "0.192",
         _tags("promotions", "uat", team="pricing-ml")),
    _aws("promo-dev", EC2, "Compute", "i-0promodev", "Instance", "210000000002", 35, "Hours", "0.192",
         _tags("promotions", "dev", team="pricing-ml")),
    _aws("promo-test", EC2, "Compute", "i-0promotest", "Instance", "210000000002", 19, "Hours", "0.096",
         _tags("promotions", "test", team="pricing-ml")),
    _aws("mlp-gpu", EC2, "Compute", "eks-mlp-gpu-a10g", "Instance", "210000000003", 900, "Hours", "1.212",
         _tags("ml-platform", "prod", team="platform"), growth=0.01, committed=True),
    _aws("mlp-eks", EKS, "Compute", "eks-mlp-prod", "Cluster", "210000000003", 120, "Hours", "0.10",
         _tags("ml-platform", "prod", team="platform")),
    _aws("mlp-s3", S3, "Storage", "meridian-feature-store", "Bucket", "210000000003", 60, "GB-Month", "0.023",
         _tags("ml-platform", "prod", team="platform"), growth=0.03),
    _aws("mlp-dev", EC2, "Compute", "eks-mlp-dev-nodes", "Instance", "210000000003", 90, "Hours", "0.384",
         _tags("ml-platform", "dev", team="platform")),
    _aws("net-nat", "Amazon Virtual Private Cloud", "Networking", "nat-0shared-egress", "NAT gateway",
         "210000000004", 110, "GB", "0.048", {"team": "platform"}, growth=0.01),
    _aws("net-logs", "Amazon CloudWatch", "Management and Governance", "org-central-logs", "Log group",
         "210000000004", 75, "GB", "0.57", {"team": "platform"}, growth=0.01),
    _aws("net-guard", "Amazon GuardDuty", "Security", "guardduty-org", "Detector", "210000000004", 30,
         "Events", "0.000004", {"team": "security"}, growth=0.005),
    _aws("sbx-report", EC2, "Compute", "i-0legacyreporting", "Instance", "210000000005", 55, "Hours", "0.192",
         {}, growth=0.0),
    _aws("sbx-s3", S3, "Storage", "meridian-tmp-exports", "Bucket", "210000000005", 18, "GB-Month", "0.023", {},
         growth=0.0),
]  # fmt: skip


def _store_code(number: int) -> str:
    return f"store-{number:04d}"


def _azure(key, meter, category, provider, resource, rtype, sub, base, unit, price, tags, **kw) -> Line:
    return Line(key, meter, category, resource, rtype, sub, base, unit, Decimal(price), tags,
                consumed_service=provider, **kw)  # fmt: skip


def _azure_id(sub: str, group: str, provider: str, name: str) -> str:
    return f"/subscriptions/{AZURE_SUBSCRIPTIONS[sub][0]}/resourceGroups/{group}/providers/{provider}/{name}"


AKS = "Microsoft.ContainerService/managedClusters"
VM, STORAGE = "Microsoft.Compute", "Microsoft.Storage"
AZURE_LINES = [
    _azure("sv-aks", "Virtual Machines", "Compute", VM, _azure_id("prod", "rg-vision-prod", AKS, "aks-vision/gpu-t4"),
           "Virtual machine scale set", "prod", 520, "1 Hour", "0.526", _tags("shelf-vision", "prod", team="vision")),
    _azure("sv-blob", "Storage", "Storage", STORAGE, _azure_id("prod", "rg-vision-prod", f"{STORAGE}/storageAccounts",
           "shelfimages"), "Storage account", "prod", 95, "1 GB/Month", "0.0208",
           _tags("shelf-vision", "prod", team="vision"), growth=0.035),
    _azure("sv-iot", "IoT Hub", "Internet of Things", "Microsoft.Devices", _azure_id("prod", "rg-vision-prod",
           "Microsoft.Devices/IotHubs", "shelf-hub"), "IoT hub", "prod", 40, "1 Unit/Day", "1.667",
           _tags("shelf-vision", "prod", team="vision"), growth=0.04),
    _azure("sv-uat", "Virtual Machines", "Compute", VM, _azure_id("nonprod", "rg-vision-uat", AKS, "aks-vision-uat"),
           "Virtual machine scale set", "nonprod", 45, "1 Hour", "0.526", _tags("shelf-vision", "uat", team="vision")),
    _azure("sv-dev", "Virtual Machines", "Compute", VM, _azure_id("nonprod", "rg-vision-dev", AKS, "aks-vision-dev"),
           "Virtual machine scale set", "nonprod", 40, "1 Hour", "0.526", _tags("shelf-vision", "dev", team="vision")),
    _azure("sv-system", "Virtual Machines", "Compute", VM, _azure_id("prod", "rg-vision-prod", AKS,
           "aks-vision/system"), "Virtual machine scale set", "prod", 35, "1 Hour", "0.192", {}),
    _azure("sc-aks", "Virtual Machines", "Compute", VM, _azure_id("prod", "rg-cart-prod", AKS, "aks-cart/nodes"),
           "Virtual machine scale set", "prod", 310, "1 Hour", "0.384", _tags("smart-cart", "prod", team="checkout"),
           weekly=WEEK_RETAIL, growth=0.02),
    _azure("sc-cosmos", "Azure Cosmos DB", "Databases", "Microsoft.DocumentDB", _azure_id("prod", "rg-cart-prod",
           "Microsoft.DocumentDB/databaseAccounts", "cart-sessions"), "Cosmos DB account", "prod", 120,
           "100 RU/s", "0.008", _tags("smart-cart", "prod", team="checkout"), weekly=WEEK_RETAIL, growth=0.02),
    _azure("sc-events", "Event Hubs", "Integration", "Microsoft.EventHub", _azure_id("prod", "rg-cart-prod",
           "Microsoft.EventHub/namespaces", "cart-events"), "Event Hubs namespace", "prod", 45, "1 Hour", "0.03",
           _tags("smart-cart", "prod", team="checkout"), weekly=WEEK_RETAIL),
    _azure("sc-test", "Virtual Machines", "Compute", VM, _azure_id("nonprod", "rg-cart-test", AKS, "aks-cart-test"),
           "Virtual machine scale set", "nonprod", 30, "1 Hour", "0.192", _tags("smart-cart", "test", team="checkout")),
    _azure("sc-dev", "Virtual Machines", "Compute", VM, _azure_id("nonprod", "rg-cart-dev", AKS, "aks-cart-dev"),
           "Virtual machine scale set", "nonprod", 35, "1 Hour", "0.192", _tags("smart-cart", "dev", team="checkout")),
    _azure("obs-logs", "Log Analytics", "Management and Governance", "Microsoft.OperationalInsights",
           _azure_id("prod", "rg-observability", "Microsoft.OperationalInsights/workspaces", "law-retail"),
           "Log Analytics workspace", "prod", 60, "1 GB", "2.76", {"shared": "observability", "team": "platform"}),
    _azure("tmp-exports", "Storage", "Storage", STORAGE, _azure_id("nonprod", "rg-scratch",
           f"{STORAGE}/storageAccounts", "tmpexports"), "Storage account", "nonprod", 15, "1 GB/Month", "0.0208", {},
           growth=0.0),
    *(
        _azure(f"sv-edge-{n}", "Azure Stack Edge", "Internet of Things", "Microsoft.DataBoxEdge",
               _azure_id("prod", "rg-vision-edge", "Microsoft.DataBoxEdge/dataBoxEdgeDevices", f"ase-{_store_code(n)}"),
               "Edge device", "prod", 6.5, "1 Day", "6.5", _tags("shelf-vision", "prod", store=_store_code(n)),
               growth=0.0)
        for n in SHELF_PILOT_STORES
    ),
    *(
        _azure(f"sc-edge-{n}", "IoT Edge", "Internet of Things", "Microsoft.Devices",
               _azure_id("prod", "rg-cart-edge", "Microsoft.Devices/IotHubs", f"edge-{_store_code(n)}"),
               "Edge gateway", "prod", 4.8, "1 Day", "4.8", _tags("smart-cart", "prod", store=_store_code(n)),
               weekly=WEEK_RETAIL, growth=0.0)
        for n in CART_PILOT_STORES
    ),
]  # fmt: skip

# Units of service per day at the start of the year, and their monthly growth.
UNITS = {
    "price-forecast": (34_200, 0.010, WEEK_FLAT),  # 1,000 predictions: ~18,000 SKUs x 1,900 stores a night
    "promotions": (2_600, 0.030, WEEK_RETAIL),  # 1,000 offers served
    "shelf-vision": (700, 0.060, WEEK_FLAT),  # store-days: the roll-out grows from 700 stores
    "smart-cart": (38_000, 0.025, WEEK_RETAIL),  # checkouts
    "ml-platform": (210_000, 0.030, WEEK_FLAT),  # 1,000 inference requests
}

RULES = [
    # name, order, match, tag key, value, service, environment, location, shared, spread, weights
    ("Shared network and security account", 10, "sub_account", "", "210000000004", None, None, None, True,
     "direct_cost", {}),
    ("Observability workspace (shared)", 20, "tag", "shared", "observability", None, None, None, True, "weights",
     {"shelf-vision": 3, "smart-cart": 1}),
    ("Price forecasting", 30, "tag", "service", "price-forecast", "price-forecast", None, "aws-eu-west-1", False,
     "direct_cost", {}),
    ("Real-time promotions", 31, "tag", "service", "promotions", "promotions", None, "aws-eu-west-1", False,
     "direct_cost", {}),
    ("ML platform", 32, "tag", "service", "ml-platform", "ml-platform", None, "aws-eu-west-1", False,
     "direct_cost", {}),
    ("Shelf vision", 33, "tag", "service", "shelf-vision", "shelf-vision", None, None, False, "direct_cost", {}),
    ("Smart cart", 34, "tag", "service", "smart-cart", "smart-cart", None, None, False, "direct_cost", {}),
    ("Vision AKS system pool (untagged)", 50, "resource", "", r"/resourceGroups/rg-vision-prod/.*/system$",
     "shelf-vision", "prod", "azure-uksouth", False, "direct_cost", {}),
    ("ML platform account", 60, "sub_account", "", "210000000003", "ml-platform", "prod", "aws-eu-west-1", False,
     "direct_cost", {}),
]  # fmt: skip


# --- Cost model ---------------------------------------------------------------------------------------------


def _rng(*parts: object) -> random.Random:
    return random.Random(":".join(str(p) for p in parts))


def _months_between(first: date, day: date) -> int:
    return (day.year - first.year) * 12 + day.month - first.month


def spikes(today: date) -> dict[tuple[str, date], float]:
    """Two incidents: promotions' fleet runs away on a recent day; an ML experiment left running months ago."""
    recent = today - timedelta(days=2) if today.day >= 3 else today
    return {("promo-eks", recent): 4.5, ("mlp-dev", today - relativedelta(months=5, day=11)): 6.0}


def daily_cost(line: Line, day: date, first: date, spike: float = 1.0) -> float:
    noise = _rng(line.key, day).uniform(0.97, 1.03)
    growth = (1 + line.growth) ** ((day - first).days / 30.44)
    return line.base * growth * line.weekly[day.weekday()] * noise * spike


@dataclass(frozen=True)
class Charge:
    """One day of one line, in provider-neutral terms."""

    quantity: Decimal
    list_cost: Decimal
    contracted_unit_price: Decimal
    contracted_cost: Decimal
    effective: Decimal
    billed: Decimal


def charge(line: Line, amount: float) -> Charge:
    """Amounts that satisfy FOCUS: ListCost = ListUnitPrice x PricingQuantity, the same for ContractedCost."""
    quantity = (Decimal(str(amount)) / line.unit_price / Decimal("0.9")).quantize(Decimal("0.001"))
    contracted_price = (line.unit_price * Decimal("0.9")).quantize(Decimal("0.0000001"))
    contracted = quantity * contracted_price
    effective = (contracted * Decimal("0.72")).quantize(SIX) if line.committed else contracted
    return Charge(quantity, quantity * line.unit_price, contracted_price, contracted, effective,
                  Decimal(0) if line.committed else effective)  # fmt: skip


# --- AWS FOCUS 1.2 export ------------------------------------------------------------------------------------

FOCUS_COLUMNS = [
    "BilledCost", "EffectiveCost", "ListCost", "ListUnitPrice", "ContractedCost", "ContractedUnitPrice",
    "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd",
    "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ServiceName", "ServiceCategory",
    "ProviderName", "PublisherName", "InvoiceIssuerName", "InvoiceId", "BillingAccountId", "BillingAccountName",
    "BillingAccountType", "SubAccountId", "SubAccountName", "SubAccountType", "ResourceId", "ResourceName",
    "ResourceType", "RegionId", "RegionName", "AvailabilityZone", "Tags", "ConsumedQuantity", "ConsumedUnit",
    "PricingQuantity", "PricingUnit", "PricingCategory", "SkuId", "CommitmentDiscountId", "CommitmentDiscountName",
    "CommitmentDiscountType", "CommitmentDiscountCategory", "CommitmentDiscountStatus", "x_ServiceCode",
]  # fmt: skip
AWS_SERVICE_CODES = {
    EC2: "AmazonEC2",
    SAGEMAKER: "AmazonSageMaker",
    S3: "AmazonS3",
    DYNAMO: "AmazonDynamoDB",
    CACHE: "AmazonElastiCache",
    EKS: "AmazonEKS",
    "Amazon Virtual Private Cloud": "AmazonVPC",
    "Amazon CloudWatch": "AmazonCloudWatch",
    "Amazon GuardDuty": "AmazonGuardDuty",
}


def _ts(moment: date | datetime) -> str:
    if not isinstance(moment, datetime):
        return f"{moment:%Y-%m-%d}T00:00:00Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Decimal) -> str:
    return format(value, "f")


def _month_end(month: date) -> date:
    return month + relativedelta(months=1)


def _aws_common(month: date, account: str) -> dict:
    return {
        "BillingCurrency": CURRENCY,
        "BillingPeriodStart": _ts(month),
        "BillingPeriodEnd": _ts(_month_end(month)),
        "ProviderName": "AWS",
        "PublisherName": "Amazon Web Services, Inc.",
        "InvoiceIssuerName": "Amazon Web Services EMEA SARL",
        "InvoiceId": f"EUINGB{month:%y%m}{account[-4:]}",
        "BillingAccountId": AWS_PAYER,
        "BillingAccountName": "Meridian Markets payer",
        "BillingAccountType": "Billing Account",
        "SubAccountId": account,
        "SubAccountName": AWS_ACCOUNTS[account],
        "SubAccountType": "Linked Account",
        "RegionId": "eu-west-1",
        "RegionName": "Europe (Ireland)",
    }


def aws_month_rows(month: date, days: list[date], first: date, peaks: dict) -> list[dict]:
    rows = []
    covered = Decimal(0)
    for day in days:
        for line in AWS_LINES:
            c = charge(line, daily_cost(line, day, first, peaks.get((line.key, day), 1.0)))
            if line.committed:
                covered += c.effective
            commitment = (
                {
                    "CommitmentDiscountId": AWS_SAVINGS_PLAN,
                    "CommitmentDiscountName": "Compute savings plan (GPU fleet)",
                    "CommitmentDiscountType": "Savings Plan",
                    "CommitmentDiscountCategory": "Spend",
                    "CommitmentDiscountStatus": "Used",
                    "PricingCategory": "Committed",
                }
                if line.committed
                else {"PricingCategory": "Standard"}
            )
            rows.append(
                _aws_common(month, line.account)
                | commitment
                | {
                    "BilledCost": _text(c.billed),
                    "EffectiveCost": _text(c.effective),
                    "ListCost": _text(c.list_cost),
                    "ListUnitPrice": _text(line.unit_price),
                    "ContractedCost": _text(c.contracted_cost),
                    "ContractedUnitPrice": _text(c.contracted_unit_price),
                    "ChargePeriodStart": _ts(day),
                    "ChargePeriodEnd": _ts(day + timedelta(days=1)),
                    "ChargeCategory": "Usage",
                    "ChargeDescription": f"{line.provider_service}: {line.resource}",
                    "ChargeFrequency": "Usage-Based",
                    "ServiceName": line.provider_service,
                    "ServiceCategory": line.category,
                    "ResourceId": f"arn:aws:{AWS_SERVICE_CODES[line.provider_service].removeprefix('Amazon').lower()}"
                    f":eu-west-1:{line.account}:{line.resource}",
                    "ResourceName": line.resource,
                    "ResourceType": line.resource_type,
                    "AvailabilityZone": "eu-west-1a",
                    "Tags": json.dumps(line.tags) if line.tags else None,
                    "ConsumedQuantity": _text(c.quantity),
                    "ConsumedUnit": line.unit,
                    "PricingQuantity": _text(c.quantity),
                    "PricingUnit": line.unit,
                    "SkuId": f"SKU-{line.key.upper()}",
                    "x_ServiceCode": AWS_SERVICE_CODES[line.provider_service],
                }
            )
    fee = {
        "BilledCost": _text(covered),
        "EffectiveCost": "0",  # prepaid: its cost is amortised onto the usage it covers
        "ListCost": _text(covered),
        "ContractedCost": _text(covered),
        "ChargePeriodStart": _ts(month),
        "ChargePeriodEnd": _ts(_month_end(month)),
        "ChargeCategory": "Purchase",
        "ChargeDescription": "Compute savings plan, monthly commitment",
        "ChargeFrequency": "Recurring",
        "ServiceName": "Savings Plans for AWS Compute usage",
        "ServiceCategory": "Compute",
        "PricingQuantity": str(calendar.monthrange(month.year, month.month)[1] * 24),
        "PricingUnit": "Hours",
        "PricingCategory": "Committed",
        "CommitmentDiscountId": AWS_SAVINGS_PLAN,
        "CommitmentDiscountName": "Compute savings plan (GPU fleet)",
        "CommitmentDiscountType": "Savings Plan",
        "CommitmentDiscountCategory": "Spend",
        "x_ServiceCode": "ComputeSavingsPlans",
    }
    rows.append(_aws_common(month, "210000000003") | fee)
    if _months_between(first, month) in (2, 6, 10):  # a migration credit, three times a year
        amount = _text(-Decimal(1500))
        credit = {
            "BilledCost": amount,
            "EffectiveCost": amount,
            "ListCost": amount,
            "ContractedCost": amount,
            "ChargePeriodStart": _ts(month + timedelta(days=9)),
            "ChargePeriodEnd": _ts(month + timedelta(days=10)),
            "ChargeCategory": "Credit",
            "ChargeDescription": "Migration Acceleration Program credit",
            "ChargeFrequency": "One-Time",
            "ServiceName": EC2,
            "ServiceCategory": "Compute",
            "Tags": json.dumps(_tags("price-forecast", "prod")),
            "x_ServiceCode": "AmazonEC2",
        }
        if month + timedelta(days=9) <= days[-1]:
            rows.append(_aws_common(month, "210000000001") | credit)
    return rows


def write_focus_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {name: pa.array([row.get(name) for row in rows], pa.string()) for name in FOCUS_COLUMNS}
    pq.write_table(pa.table(columns), path, compression="snappy")


# --- Azure EA cost details (amortized) -----------------------------------------------------------------------

AZURE_EA_COLUMNS = [
    "InvoiceSectionName", "AccountName", "SubscriptionId", "SubscriptionName", "ResourceGroup", "ResourceLocation",
    "Date", "ProductName", "MeterCategory", "MeterSubCategory", "MeterId", "MeterName", "UnitOfMeasure", "Quantity",
    "EffectivePrice", "CostInBillingCurrency", "CostCenter", "ConsumedService", "ResourceId", "Tags", "OfferId",
    "ResourceName", "UnitPrice", "PublisherType", "PublisherName", "ChargeType", "Frequency", "PricingModel",
    "BillingAccountId", "BillingAccountName", "BillingCurrencyCode", "BillingPeriodStartDate",
    "BillingPeriodEndDate", "BillingProfileId", "BillingProfileName", "PayGPrice",
]  # fmt: skip


def _us(day: date) -> str:
    return f"{day:%m/%d/%Y}"  # EA exports write US dates


def _ea_tags(tags: dict) -> str:
    return ",".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in tags.items())  # EA drops the braces


def azure_month_rows(month: date, days: list[date], first: date, peaks: dict) -> list[dict]:
    rows = []
    last = _month_end(month) - timedelta(days=1)
    for day in days:
        for line in AZURE_LINES:
            c = charge(line, daily_cost(line, day, first, peaks.get((line.key, day), 1.0)))
            sub_id, sub_name = AZURE_SUBSCRIPTIONS[line.account]
            block = int(line.unit.split()[0]) if line.unit.split()[0].isdigit() else 1
            rows.append(
                {
                    "InvoiceSectionName": "Retail technology",
                    "AccountName": "Meridian Markets cloud",
                    "SubscriptionId": sub_id,
                    "SubscriptionName": sub_name,
                    "ResourceGroup": line.resource.split("/")[4],
                    "ResourceLocation": "UK South",
                    "Date": _us(day),
                    "ProductName": f"{line.provider_service} - {line.resource_type}",
                    "MeterCategory": line.provider_service,
                    "MeterSubCategory": line.resource_type,
                    "MeterId": hashlib.md5(line.key.encode(), usedforsecurity=False).hexdigest(),
                    "MeterName": line.unit,
                    "UnitOfMeasure": line.unit,
                    "Quantity": _text(c.quantity * block),
                    "EffectivePrice": _text(c.contracted_unit_price),
                    "CostInBillingCurrency": _text(c.effective),
                    "CostCenter": line.tags.get("team", ""),
                    "ConsumedService": line.consumed_service,
                    "ResourceId": line.resource,
                    "Tags": _ea_tags(line.tags),
                    "OfferId": "MS-AZR-0017P",
                    "ResourceName": line.resource.rsplit("/", 1)[-1],
                    "UnitPrice": _text(c.contracted_unit_price),
                    "PublisherType": "Azure",
                    "PublisherName": "Microsoft",
                    "ChargeType": "Usage",
                    "Frequency": "UsageBased",
                    "PricingModel": "OnDemand",
                    "BillingAccountId": "8611537",
                    "BillingAccountName": "Meridian Markets",
                    "BillingCurrencyCode": CURRENCY,
                    "BillingPeriodStartDate": _us(month),
                    "BillingPeriodEndDate": _us(last),  # inclusive, as Azure writes it
                    "BillingProfileId": "8611537",
                    "BillingProfileName": "Meridian Markets",
                    "PayGPrice": _text(line.unit_price),
                }
            )
    return rows


def write_ea_csv(rows: list[dict], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=AZURE_EA_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(("\ufeff" + buffer.getvalue()).encode("utf-8"))  # EA files start with a BOM


# --- Units of service ----------------------------------------------------------------------------------------


def units_csv(days: list[date], first: date) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["service", "date", "units"])
    for slug, (base, growth, weekly) in UNITS.items():
        for day in days:
            noise = _rng("units", slug, day).uniform(0.98, 1.02)
            value = base * (1 + growth) ** ((day - first).days / 30.44) * weekly[day.weekday()] * noise
            writer.writerow([slug, day.isoformat(), round(value)])
    return buffer.getvalue().encode()


# --- Loading -------------------------------------------------------------------------------------------------


def _sync_rules(log) -> int:
    """Create or update the demo's rules through the rule service; unchanged rules are left alone."""
    services_by_slug = {s.slug: s for s in Service.objects.all()}
    envs = {e.slug: e for e in Environment.objects.all()}
    locations = {loc.code: loc for loc in Location.objects.exclude(kind=Location.Kind.STORE)}
    saved = 0
    for name, order, match, tag_key, value, service, env, location, shared, spread, weights in RULES:
        wanted = {
            "order": order,
            "enabled": True,
            "match": match,
            "tag_key": tag_key,
            "value": value,
            "service": services_by_slug.get(service) if service else None,
            "environment": envs.get(env) if env else None,
            "location": locations.get(location) if location else None,
            "shared": shared,
            "spread": spread,
            "weights": weights,
        }
        rule = AllocationRule.objects.filter(name=name).first() or AllocationRule(name=name)
        if rule.pk and all(getattr(rule, k) == v for k, v in wanted.items()):
            continue
        for key, val in wanted.items():
            setattr(rule, key, val)
        services.allocation_rule_save(rule=rule)
        saved += 1
    return saved


def _source(name: str, fmt: str, folder: Path) -> BillingSource:
    source, _ = BillingSource.objects.update_or_create(
        name=name, defaults={"format": fmt, "location": str(folder), "enabled": True, "pull_every_minutes": 60}
    )
    return source


def _import_folder(source: BillingSource, folder: Path, log) -> tuple[int, int]:
    """Import each file whose content the source has not imported yet, and record it as seen by the pull."""
    imported = rows = 0
    latest = {}
    for record in BillingImport.objects.filter(source=source, status=BillingImport.Status.SUCCEEDED).order_by(
        "created_at"
    ):
        latest[record.filename] = record
    for path in sorted(folder.iterdir()):
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        done = latest.get(path.name)
        if done is None or done.checksum != checksum:
            done = services.billing_import_path(source=source, path=str(path))
            if done.status != BillingImport.Status.SUCCEEDED:
                raise RuntimeError(f"demo billing file {path.name} was rejected: {done.error}")
            imported += 1
            rows += done.rows_imported
        # The scheduled pull finds the same files in the folder: mark them seen so it does not import them again.
        SeenFile.objects.update_or_create(
            source=source,
            name=str(folder / path.name),
            defaults={"fingerprint": checksum, "size": path.stat().st_size, "last_import": done},
        )
    services.billing_source_record_pull(source=source, error=None)
    return imported, rows


def _clear(folder: Path, keep: set[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        if path.name not in keep:
            path.unlink()


def load(*, log) -> None:
    today = timezone.localdate()
    first = today.replace(day=1) - relativedelta(months=12)
    peaks = spikes(today)
    root = Path(settings.VAR_DIR) / "demo" / "billing"
    aws_dir, azure_dir = root / "aws-focus", root / "azure-ea"
    months = [first + relativedelta(months=i) for i in range(13)]
    aws_files, azure_files = {}, {}
    for month in months:
        days = [
            month + timedelta(days=i) for i in range((min(_month_end(month), today + timedelta(days=1)) - month).days)
        ]
        aws_files[f"meridian-focus-1.2-{month:%Y-%m}.parquet"] = aws_month_rows(month, days, first, peaks)
        azure_files[f"meridian-ea-amortized-{month:%Y%m}.csv"] = azure_month_rows(month, days, first, peaks)
    _clear(aws_dir, set(aws_files))
    _clear(azure_dir, set(azure_files))
    for name, rows in aws_files.items():
        write_focus_parquet(rows, aws_dir / name)
    for name, rows in azure_files.items():
        write_ea_csv(rows, azure_dir / name)

    # Rules first, so each import allocates once instead of every rule re-allocating the whole year.
    saved = _sync_rules(log)
    services.reallocations_run_pending()  # here, not in a worker: the periods an earlier load stored, if any
    aws = _source("AWS FOCUS export (payer 111122223333)", "focus", aws_dir)
    azure = _source("Azure EA cost details (amortized)", "azure_ea", azure_dir)
    n_aws, rows_aws = _import_folder(aws, aws_dir, log)
    n_azure, rows_azure = _import_folder(azure, azure_dir, log)

    days = [first + timedelta(days=i) for i in range((today - first).days + 1)]
    units_path = root / "units-of-service.csv"
    units_path.write_bytes(units_csv(days, first))
    with open(units_path, "rb") as stream:
        units = services.unit_volumes_import_csv(stream=stream, filename=units_path.name)
    log(
        f"billing: {len(RULES)} allocation rules ({saved} saved); AWS FOCUS {n_aws} file(s) imported "
        f"({rows_aws:,} rows), Azure EA {n_azure} file(s) ({rows_azure:,} rows); {units.rows:,} days of units "
        f"({units.created:,} new); {first:%b %Y} to {today:%-d %b %Y}"
    )
