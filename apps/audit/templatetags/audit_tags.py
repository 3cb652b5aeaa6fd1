import json

from django import template

register = template.Library()


@register.filter
def audit_value(value) -> str:
    """A recorded field value as text: strings as they are, everything else as JSON, nothing as an em dash."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
