"""Login rate limiting (django-axes): whose address a failed sign-in counts against, and the lockout page."""

import ipaddress

from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render


def _valid(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address.strip()))
    except ValueError:
        return None


def client_address(request) -> str | None:
    """The client's address: ``REMOTE_ADDR``, or behind ``PROXY_COUNT`` trusted proxies the address they recorded.

    Each proxy appends the address it received the request from to ``X-Forwarded-For``, so with N proxies
    the client is the N-th entry from the right. Entries further left were sent by the client and could be
    anything; they are never used. A header shorter than expected, or an entry that is not an address,
    falls back to ``REMOTE_ADDR``.
    """
    remote = request.META.get("REMOTE_ADDR")
    if not settings.BEHIND_PROXY:
        return remote
    hops = [h for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    count = max(settings.PROXY_COUNT, 1)
    if len(hops) < count:
        return remote
    return _valid(hops[-count]) or remote


def lockout_response(request, original_response=None, credentials=None):
    """The sign-in page, answered with 429, once a username + address has failed too often.

    Every failed attempt during a lockout restarts the cool-off, so the wait shown is the whole
    cool-off, counted from this attempt.
    """
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    context = {
        "form": AuthenticationForm(request, initial={"username": username}),
        "lockout_minutes": settings.LOGIN_COOLOFF_MINUTES,
        "next": request.POST.get(REDIRECT_FIELD_NAME, request.GET.get(REDIRECT_FIELD_NAME, "")),
    }
    return render(request, "registration/login.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)
