"""Google Cloud detailed (resource-level) billing export, as CSV with dotted column names or as Parquet.

Credits are netted into their usage row (BilledCost = EffectiveCost = cost + sum of credits) and kept
in ``x_Credits``. Billing periods follow ``invoice.month``, a month in Pacific time, so they start at
07:00 or 08:00 UTC.
"""

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from .base import DECIMAL_EXPECTED, CellError, NormalizedRow, show
from .mapper import FormatMapper
from .values import Cells, parse_decimal

ZERO = Decimal(0)
PACIFIC = ZoneInfo("America/Los_Angeles")
CHARGE_CATEGORIES = {"regular": "Usage", "tax": "Tax", "adjustment": "Adjustment", "rounding_error": "Adjustment"}
SERVICE_CATEGORIES = {
    "Compute Engine": "Compute",
    "Kubernetes Engine": "Compute",
    "Cloud Run": "Compute",
    "Cloud Functions": "Compute",
    "App Engine": "Web",
    "Cloud Storage": "Storage",
    "Filestore": "Storage",
    "BigQuery": "Analytics",
    "Dataflow": "Analytics",
    "Cloud Pub/Sub": "Integration",
    "Cloud SQL": "Databases",
    "Cloud Spanner": "Databases",
    "Cloud Bigtable": "Databases",
    "Cloud Memorystore for Redis": "Databases",
    "Networking": "Networking",
    "Cloud DNS": "Networking",
    "Vertex AI": "AI and Machine Learning",
    "Cloud Logging": "Management and Governance",
    "Cloud Monitoring": "Management and Governance",
    "Secret Manager": "Security",
    "Cloud Key Management Service (KMS)": "Security",
}
# Lowest to highest precedence: a resource's own labels override the labels of its project.
LABEL_COLUMNS = ("project.labels", "tags", "labels", "system_labels")
CREDITS_EXPECTED = 'a JSON list of credits such as [{"name": "Free tier", "amount": -1.25}]'
LABELS_EXPECTED = 'a JSON list such as [{"key": "env", "value": "prod"}]'
MONTH_EXPECTED = "a month such as 202401"
_MONTH = re.compile(r"(\d{4})(\d{2})", re.ASCII)


class GcpMapper(FormatMapper):
    key = "gcp"
    label = "Google Cloud detailed billing export"
    required = ("cost", "currency", "usage_start_time", "usage_end_time", "invoice.month")
    signature = ("cost", "usage_start_time", "invoice.month")
    currency_column = "currency"

    def map(self, cells: Cells) -> NormalizedRow:
        c = cells
        cost = c.decimal("cost", required=True)
        credits = self._credits(c)
        net = cost + sum((amount for _, _, amount in credits), ZERO)
        period_start, period_end = self._invoice_month(c)
        cost_type = c.text("cost_type")
        category = CHARGE_CATEGORIES.get(cost_type, "Adjustment") if cost_type else "Usage"
        usage = category == "Usage"
        committed = bool(c.text("subscription.instance_id")) or any(
            kind.startswith("COMMITTED_USAGE_DISCOUNT") for _, kind, _ in credits
        )
        service = c.text("service.description")
        extras = {
            "x_Credits": [{"name": name, "type": kind, "amount": str(amount)} for name, kind, amount in credits],
            "x_CostType": cost_type,
            "x_ServiceId": c.text("service.id"),
            "x_ExportTime": c.text("export_time"),
        }
        return NormalizedRow(
            row=c.row,
            billed_cost=net,
            effective_cost=net,
            billing_currency=c.text("currency", required=True, expected="a currency code such as USD"),
            billing_period_start=period_start,
            billing_period_end=period_end,
            charge_period_start=c.datetime("usage_start_time", required=True),
            charge_period_end=c.datetime("usage_end_time", required=True),
            list_cost=self._list_cost(c, net, usage),
            contracted_cost=cost,
            contracted_unit_price=c.decimal("price.effective_price"),
            charge_category=category,
            charge_description=c.text("sku.description"),
            charge_frequency="Usage-Based" if usage else "One-Time",
            service_name=service,
            service_category=SERVICE_CATEGORIES.get(service or "", "Other"),
            provider_name="Google Cloud",
            publisher_name=c.text("seller_name") or "Google Cloud",
            invoice_issuer_name="Google Cloud",
            billing_account_id=c.text("billing_account_id"),
            sub_account_id=c.text("project.id"),
            sub_account_name=c.text("project.name"),
            resource_id=c.text("resource.global_name"),
            resource_name=c.text("resource.name"),
            region_id=c.text("location.region"),
            region_name=c.text("location.region"),
            availability_zone=c.text("location.zone"),
            tags=self._labels(c),
            consumed_quantity=c.decimal("usage.amount") if usage else None,
            consumed_unit=c.text("usage.unit") if usage else None,
            pricing_quantity=c.decimal("usage.amount_in_pricing_units") if usage else None,
            pricing_unit=c.text("usage.pricing_unit") if usage else None,
            pricing_category=("Committed" if committed else "Standard") if usage else None,
            sku_id=c.text("sku.id"),
            commitment_discount_id=c.text("subscription.instance_id"),
            extras={key: value for key, value in extras.items() if value},
        )

    @staticmethod
    def _list_cost(c: Cells, net: Decimal, usage: bool) -> Decimal | None:
        list_cost = c.decimal("cost_at_list")
        # Taxes and adjustments have no list price: the charge is its own list cost.
        return net if list_cost is None and not usage else list_cost

    @staticmethod
    def _credits(c: Cells) -> list[tuple[str | None, str, Decimal]]:
        """(name, type, amount) of each credit; a credit that cannot be read rejects the row, as its cost would."""
        value = c.json("credits", expected=CREDITS_EXPECTED)
        if value is None:
            return []
        column = c.columns.label("credits")
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise CellError(column, value, f"{show(value)} is not a list of credits", CREDITS_EXPECTED)
        credits = []
        for item in value:
            try:
                amount = parse_decimal(item.get("amount"))
            except ValueError:
                problem = f"credit amount {show(item.get('amount'))} is not a number"
                raise CellError(column, item.get("amount"), problem, DECIMAL_EXPECTED) from None
            credits.append((item.get("name"), str(item.get("type") or ""), amount))
        return credits

    @staticmethod
    def _invoice_month(c: Cells) -> tuple[datetime, datetime]:
        text = c.text("invoice.month", required=True, expected=MONTH_EXPECTED)
        try:
            match = _MONTH.fullmatch(text.strip())
            if match is None:
                raise ValueError(text)
            year, month = int(match[1]), int(match[2])
            start = datetime(year, month, 1, tzinfo=PACIFIC)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=PACIFIC)
            return start.astimezone(UTC), end.astimezone(UTC)
        except (ValueError, OverflowError):
            column = c.columns.label("invoice.month")
            raise CellError(column, text, f"{show(text)} is not a month", MONTH_EXPECTED) from None

    @staticmethod
    def _labels(c: Cells) -> dict[str, Any] | None:
        merged: dict[str, Any] = {}
        for column in LABEL_COLUMNS:
            try:
                value = c.json(column, expected=LABELS_EXPECTED)
            except CellError as exc:
                c.note("key-value-unparseable", exc.column, exc.value)
                continue
            if value is None:
                continue
            if not isinstance(value, list) or not all(isinstance(item, dict) and "key" in item for item in value):
                c.note("key-value-unparseable", c.columns.label(column), value)
                continue
            merged.update(c.merge_pairs("Tags", ((item["key"], item.get("value")) for item in value)))
        return merged or None
