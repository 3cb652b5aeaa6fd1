from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from django.db import connection
from django.db.models import Q, Sum

from apps.core.periods import Period

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


def cloud_cost_by_period(
    *,
    periods: Sequence[Period],
    environment_kinds: set[str] | None = None,
    service_slugs: list[str] | None = None,
    team_slug: str | None = None,
    cost: str = "effective",
    by_team: bool = False,
) -> dict[int | None, list[Decimal]]:
    """:func:`cloud_cost` of each period in one grouped query, with the same cuts.

    Returns ``{None: [cost per period]}``, or with ``by_team`` ``{team id: [cost per period]}`` for the
    teams that own a service with cost in the span (the cost of a team is ``cloud_cost(team_slug=its
    slug)``; cost of services without a team is in no team).
    """
    from apps.catalog.models import Environment, Service

    field = {"effective": "effective_cost", "billed": "billed_cost"}[cost]
    q = Q(day__gte=min(p.start for p in periods), day__lt=max(p.end for p in periods))
    # The cuts are resolved to ids first (two small catalog reads), so the rollups are filtered on their own
    # columns rather than joined to the catalog row by row.
    if environment_kinds is not None:
        q &= Q(
            environment_id__in=list(Environment.objects.filter(kind__in=environment_kinds).values_list("pk", flat=True))
        )
    services = Service.objects.all()
    if service_slugs is not None:
        services = services.filter(slug__in=service_slugs)
    if team_slug is not None:
        services = services.filter(team__slug=team_slug)
    if by_team:
        services = services.filter(team__isnull=False)
    team_of = dict(services.values_list("pk", "team_id"))
    if service_slugs is not None or team_slug is not None or by_team:
        q &= Q(service_id__in=list(team_of))
    # Summed per day (and service): a few thousand rows whatever the number of rollups, bucketed here.
    groups = ("day", "service_id") if by_team else ("day",)
    found: dict[int | None, list[Decimal]] = {} if by_team else {None: [Decimal("0")] * len(periods)}
    for row in CostRollup.objects.filter(q).values(*groups).annotate(total=Sum(field)).order_by():
        for i, p in enumerate(periods):
            if p.start <= row["day"] < p.end and row["total"] is not None:
                key = team_of[row["service_id"]] if by_team else None
                costs = found.setdefault(key, [Decimal("0")] * len(periods))
                costs[i] += row["total"]
    return found


def has_cost_data_in(periods: Sequence[Period]) -> list[bool]:
    """For each period, whether billing has any cost data in it (any service or environment): one query of
    index probes, whatever the number of rollups."""
    if not periods:
        return []
    table, day = connection.ops.quote_name(CostRollup._meta.db_table), connection.ops.quote_name("day")
    probe = f"EXISTS (SELECT 1 FROM {table} WHERE {day} >= %s AND {day} < %s)"
    params = [value for p in periods for value in (p.start, p.end)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join([probe] * len(periods)), params)
        return [bool(found) for found in cursor.fetchone()]


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
