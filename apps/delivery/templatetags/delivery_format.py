"""Display formats for delivery figures. Values stay exact Decimals until here: pages round for display only."""

from decimal import Decimal

from django import template
from django.template.defaultfilters import floatformat

register = template.Library()


@register.filter
def money(value: Decimal | None) -> str:
    return "—" if value is None else floatformat(value, "2g")


@register.filter
def duration(hours: Decimal | None) -> str:
    """Hours as the unit a person reads best: minutes under an hour, days from two days."""
    if hours is None:
        return "—"
    if hours < 1:
        return f"{floatformat(hours * 60, 0)} min"
    if hours < 48:
        return f"{floatformat(hours, 1)} h"
    return f"{floatformat(hours / 24, 1)} days"


@register.filter
def percent(value: Decimal | None) -> str:
    return "—" if value is None else f"{floatformat(value, 1)}%"


@register.filter
def number(value: Decimal | None, places: int = 1) -> str:
    return "—" if value is None else floatformat(value, f"{places}g")


@register.filter
def tier_rag(tier) -> str:
    """A tier's colour: elite and high green, medium amber, low red."""
    return {"elite": "green", "high": "green", "medium": "amber", "low": "red"}.get(getattr(tier, "tier", ""), "")


@register.filter
def change_text(kpi, previous_label: str = "") -> str:
    """'▲ 12.5% vs October 2026' (or 'new', or nothing) for a KpiValue; the arrow shows the direction."""
    if kpi.value is None or kpi.previous is None:
        return "no figure for the previous period" if kpi.value is not None else ""
    against = f" vs {previous_label}" if previous_label else " vs previous period"
    if kpi.previous == 0:
        return f"new{against}"
    change = (kpi.value - kpi.previous) / kpi.previous * 100
    arrow = "▲" if change > 0 else "▼" if change < 0 else "="
    verdict = {True: " (better)", False: " (worse)", None: ""}[kpi.change_is_good]
    return f"{arrow} {floatformat(abs(change), 1)}%{against}{verdict}"


@register.filter
def restore_hours(started_at, resolved_at) -> Decimal:
    return Decimal(int((resolved_at - started_at).total_seconds())) / 3600
