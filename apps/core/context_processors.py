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
    period, today = request_period(request), timezone.localdate()
    unfinished = period.start <= today < period.end
    return {
        "nav_sections": sections,
        "nav_active": active_item(request.path, sections),
        "period": period,
        "period_choices": recent_months(today=today),
        # The chosen period is not over yet: sums over it read low against a whole previous period.
        "period_unfinished": unfinished,
        "period_day": (today - period.start).days + 1 if unfinished else None,
    }
