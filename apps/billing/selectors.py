from datetime import date
from decimal import Decimal

from django.db.models import Q, Sum

from .models import CostRollup


def cloud_cost(
    *,
    start: date,
    end: date,
    environment_kinds: set[str] | None = None,
    service_slugs: list[str] | None = None,
    team_slug: str | None = None,
    location_code: str | None = None,
    cost: str = "effective",
) -> Decimal:
    """Allocated cloud cost over ``[start, end)`` from the daily rollups, optionally cut.

    ``environment_kinds`` e.g. {"dev", "test", "uat", "sandbox"} for non-production cost; ``cost`` is
    "effective" (amortised, the default for KPIs) or "billed".
    """
    field = {"effective": "effective_cost", "billed": "billed_cost"}[cost]
    q = Q(day__gte=start, day__lt=end)
    if environment_kinds is not None:
        q &= Q(environment__kind__in=environment_kinds)
    if service_slugs is not None:
        q &= Q(service__slug__in=service_slugs)
    if team_slug is not None:
        q &= Q(service__team__slug=team_slug)
    if location_code is not None:
        q &= Q(location__code=location_code) | Q(location__parent__code=location_code)
    return CostRollup.objects.filter(q).aggregate(total=Sum(field))["total"] or Decimal("0")


def source_summary(*, source) -> dict:
    """Stored rows and totals of a source, overall and per billing period (decimals as strings)."""
    from django.db.models import Count

    from .models import BillingLineItem

    items = BillingLineItem.objects.filter(source=source)
    per_period = (
        items.values("billing_period_start")
        .annotate(rows=Count("pk"), billed=Sum("billed_cost"), effective=Sum("effective_cost"))
        .order_by("billing_period_start")
    )
    total = items.aggregate(rows=Count("pk"), billed=Sum("billed_cost"), effective=Sum("effective_cost"))
    return {
        "source": source.name,
        "rows": total["rows"],
        "billed_cost": str(total["billed"] or Decimal("0")),
        "effective_cost": str(total["effective"] or Decimal("0")),
        "periods": [
            {
                "billing_period_start": p["billing_period_start"].date().isoformat(),
                "rows": p["rows"],
                "billed_cost": str(p["billed"]),
                "effective_cost": str(p["effective"]),
            }
            for p in per_period
        ],
    }
