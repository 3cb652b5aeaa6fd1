from django.http import HttpRequest
from django.utils import timezone

from .http import request_period
from .navigation import active_item, nav_for
from .periods import recent_months


def portal(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    sections = nav_for(user.role_enum)
    return {
        "nav_sections": sections,
        "nav_active": active_item(request.path, sections),
        "period": request_period(request),
        "period_choices": recent_months(today=timezone.localdate()),
    }
