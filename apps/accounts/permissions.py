"""Who may do what: one place for the role rules, used by pages (mixins) and the API (DRF permission)."""

from django.contrib.auth.mixins import AccessMixin
from django.core.exceptions import PermissionDenied
from rest_framework import permissions

from .models import ApiToken
from .roles import Role

READ_ROLES = frozenset(Role)

# The only routes an ``events:ingest`` token reaches, and only with POST: adoption events and the
# telemetry push. The token's user still needs a role that may write there (the push is for Admins).
INGEST_ROUTES = frozenset({"api-events-batch", "telemetry-push"})


def user_role(user) -> Role | None:
    if not user or not user.is_authenticated or not user.is_active:
        return None
    return user.role_enum


class RoleRequiredMixin(AccessMixin):
    """A page open to ``roles`` (every role by default); others get 403, anonymous users the login form."""

    roles: frozenset[Role] = READ_ROLES

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if user_role(request.user) not in self.roles:
            raise PermissionDenied("Your role does not give access to this page.")
        return super().dispatch(request, *args, **kwargs)


class AdminRequiredMixin(RoleRequiredMixin):
    roles = frozenset({Role.ADMIN})


class RolePermission(permissions.BasePermission):
    """API default: every role reads; writes need a role in the view's ``write_roles`` (Admin by default).

    A token with the read scope can never write, whatever its user's role; a token with the
    ``events:ingest`` scope can only POST to :data:`INGEST_ROUTES`.
    """

    message = "Your role does not allow this action."

    def has_permission(self, request, view) -> bool:
        role = user_role(request.user)
        if role is None:
            return False
        if isinstance(request.auth, ApiToken) and request.auth.scope == ApiToken.Scope.EVENTS_INGEST:
            match = getattr(request, "resolver_match", None)
            if request.method != "POST" or match is None or match.url_name not in INGEST_ROUTES:
                self.message = (
                    "This API token has the events:ingest scope: it may only POST to /api/v1/events/batch/ "
                    "and /api/v1/telemetry/."
                )
                return False
        if request.method in permissions.SAFE_METHODS:
            return role in getattr(view, "read_roles", READ_ROLES)
        if isinstance(request.auth, ApiToken) and request.auth.scope == ApiToken.Scope.READ:
            self.message = "This API token has the read scope only."
            return False
        return role in getattr(view, "write_roles", frozenset({Role.ADMIN}))
