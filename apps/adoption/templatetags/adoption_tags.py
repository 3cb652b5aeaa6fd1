from decimal import Decimal

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma
from django.utils.html import format_html
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def metric_num(value, metric) -> str:
    """A metric's value for display: thousands separators, the metric's decimals, "—" for none."""
    if value is None or value == "":
        return "—"
    value = Decimal(str(value))
    decimals = getattr(metric, "decimals", 0)
    rounded = value.quantize(Decimal(1).scaleb(-decimals))
    return intcomma(f"{rounded:.{decimals}f}")


@register.filter
def signed(value) -> str:
    if value is None:
        return ""
    return f"+{value}" if value > 0 else str(value)


@register.filter
def rate_class(rate) -> str:
    """Retention cell shade: ret-0 (0-9 %) .. ret-10 (100 %)."""
    if rate is None:
        return "ret-none"
    return f"ret-{min(10, int(Decimal(rate) // 10))}"


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if mapping else None


@register.simple_tag
def sparkline(values, width: int = 120, height: int = 28):
    """A small inline SVG line of ``values`` (None leaves a gap), oldest first."""
    points = [(i, float(v)) for i, v in enumerate(values) if v is not None]
    if len(points) < 2:
        return ""
    lo = min(v for _, v in points)
    hi = max(v for _, v in points)
    span = (hi - lo) or 1.0
    step = width / max(1, len(values) - 1)
    coords = " ".join(f"{i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}" for i, v in points)
    return format_html(
        '<svg class="sparkline" viewBox="0 0 {} {}" width="{}" height="{}" aria-hidden="true">'
        '<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{}"/></svg>',
        width,
        height,
        width,
        height,
        mark_safe(coords),  # numbers formatted above, nothing user-supplied
    )
