"""Request helpers shared by the portal's pages."""

from django.contrib import messages
from django.http import HttpRequest
from django.utils import timezone

from .periods import Period, PeriodError, parse_period

SESSION_PERIOD_KEY = "opsportal.period"


def request_period(request: HttpRequest) -> Period:
    """The period the user picked: ``?period=`` first, then the last one picked this session, then this month.

    The choice is remembered in the session so it follows the user from page to page.
    """
    cached = getattr(request, "_opsportal_period", None)
    if cached is not None:
        return cached
    today = timezone.localdate()
    raw = request.GET.get("period")
    if raw is None and hasattr(request, "session"):
        raw = request.session.get(SESSION_PERIOD_KEY)
    try:
        period = parse_period(raw, today=today)
    except PeriodError as exc:
        messages.error(request, str(exc))
        period = parse_period(None, today=today)
    if hasattr(request, "session") and request.GET.get("period") is not None:
        request.session[SESSION_PERIOD_KEY] = period.key
    request._opsportal_period = period
    return period
