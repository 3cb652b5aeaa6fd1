"""Formatting for the alert pages."""

from django import template
from django.utils.html import format_html

from ..evaluation import value_label

register = template.Library()

STATE_CLASS = {"firing": "red", "pending": "amber", "resolved": "green"}


@register.filter
def metric_value(value, metric: str) -> str:
    """A value in the rule metric's unit: 612 ms, 4.20 %, 35.10 /s."""
    return value_label(metric, value)


@register.simple_tag
def alert_state(alert) -> str:
    """The state as a coloured chip; a silenced alert says so."""
    state = alert.state
    text = alert.get_state_display()
    if alert.silenced_by_id and state != "resolved":
        text += " · silenced"
    if alert.acknowledged_at and state != "resolved":
        text += " · acknowledged"
    return format_html(
        '<span class="chip state state-{}" data-state="{}"><span class="rag rag-{}"></span> {}</span>',
        state,
        state,
        STATE_CLASS.get(state, "green"),
        text,
    )


@register.filter
def labels_text(labels: dict) -> str:
    return " · ".join(f"{k}={v}" for k, v in (labels or {}).items()) or "whole scope"


@register.filter
def json_value(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "—"
    return str(value)
