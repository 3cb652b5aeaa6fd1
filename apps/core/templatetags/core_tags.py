from django import template

from apps.core import schedules

register = template.Library()


@register.filter
def schedule_text(task) -> str:
    return schedules.describe(task)
