"""Display helpers for telemetry and capacity figures (rounding for display only)."""

from decimal import Decimal

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma

register = template.Library()


@register.filter
def percent(value, places: int = 1) -> str:
    """0.1234 -> "12.3 %"; empty for None."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(places)}f} %"


@register.filter
def number(value, places: int = 0) -> str:
    """Thousands separators and fixed places; "—" for None."""
    if value is None or value == "":
        return "—"
    rounded = round(Decimal(str(value)), int(places))
    return intcomma(f"{rounded:.{int(places)}f}")


@register.filter
def ms(value) -> str:
    if value is None:
        return "—"
    return f"{float(value):,.1f} ms"
