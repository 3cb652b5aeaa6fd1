"""Who is making changes right now, for the audit trail.

The middleware puts the request in a context variable; the actor is read from it lazily, when a change
is saved, so a user that Django REST framework authenticates inside the view (API tokens) is seen too:
DRF sets ``user`` and ``auth`` on the underlying Django request once it has authenticated.

Outside a request (management commands, Celery tasks, the shell) the actor is ``system`` unless
:func:`acting_as` names one.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

SYSTEM = "system"


@dataclass(frozen=True)
class AuditContext:
    request: Any = None
    via: str = ""
    actor: Any = None
    actor_name: str = ""


_current: ContextVar[AuditContext | None] = ContextVar("opsportal_audit_context", default=None)


@dataclass(frozen=True)
class Actor:
    user: Any
    name: str
    token_name: str
    ip: str | None
    via: str


def _default_via() -> str:
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0.endswith("manage.py") and len(sys.argv) > 1 and sys.argv[1] != "runserver":
        return "command"
    return "system"


DEFAULT_VIA = _default_via()


def via_for_path(path: str) -> str:
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/admin/"):
        return "admin"
    return "page"


def client_ip(request) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a proxy rewrites it.
    return request.META.get("REMOTE_ADDR") or None


def current() -> AuditContext | None:
    return _current.get()


def current_actor() -> Actor:
    ctx = _current.get()
    if ctx is None:
        return Actor(None, SYSTEM, "", None, DEFAULT_VIA)
    user, name, token_name, ip = ctx.actor, ctx.actor_name, "", None
    request = ctx.request
    if request is not None:
        ip = client_ip(request)
        if user is None:
            user = getattr(request, "user", None)
        auth = getattr(request, "auth", None)
        token_name = getattr(auth, "name", "") if auth is not None and hasattr(auth, "key_hash") else ""
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    if not name:
        name = user.get_username() if user is not None else SYSTEM
    return Actor(user, name, token_name, ip, ctx.via or DEFAULT_VIA)


def set_request(request, via: str | None = None):
    return _current.set(AuditContext(request=request, via=via or via_for_path(request.path)))


def reset(token) -> None:
    _current.reset(token)


@contextmanager
def acting_as(actor=None, *, name: str = "", via: str = ""):
    """Attribute the changes made inside the block to ``actor`` (a user) or to ``name`` (e.g. 'system')."""
    outer = _current.get()
    token = _current.set(
        AuditContext(
            request=outer.request if outer and actor is None and not name else None,
            via=via or (outer.via if outer else ""),
            actor=actor,
            actor_name=name,
        )
    )
    try:
        yield
    finally:
        _current.reset(token)
