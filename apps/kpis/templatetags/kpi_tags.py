from decimal import Decimal

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def kpi_number(value, unit: str = "") -> str:
    """A KPI value for display: money to cents (small unit costs to four places), counts with separators."""
    if value is None:
        return "—"
    value = Decimal(value)
    if unit == "%" or unit == "score":
        return f"{value:,.1f}"
    if unit.startswith("USD"):
        places = 4 if abs(value) < 1 and value != 0 else 2
        return f"{value:,.{places}f}"
    if value == value.to_integral():
        return f"{value:,.0f}"
    return f"{value:,.2f}"


@register.filter
def kpi_change_class(kpi, unfinished: bool = False) -> str:
    """good / bad colours a change; none while a period is not over for a KPI that accumulates over it."""
    if unfinished and kpi.accumulates:
        return ""
    good = kpi.change_is_good
    return "" if good is None else "good" if good else "bad"


@register.simple_tag
def sparkline(points, width: int = 120, height: int = 28) -> str:
    """A small inline SVG line of the last periods' values (no script needed, prints well)."""
    values = [float(p) for p in points if p is not None]
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / (len(values) - 1)
    coords = " ".join(
        f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}" for i, v in enumerate(values)
    )
    return format_html(
        '<svg class="sparkline" width="{}" height="{}" viewBox="0 0 {} {}" aria-hidden="true">'
        '<polyline fill="none" stroke="currentColor" stroke-width="1.6" points="{}"/></svg>',
        width,
        height,
        width,
        height,
        mark_safe(coords),  # only numbers formatted above
    )
