from axes.backends import AxesStandaloneBackend
from django.contrib.auth.backends import ModelBackend

from .roles import Role


class LockoutBackend(AxesStandaloneBackend):
    """Refuses a sign-in from a username + address that failed too often (django-axes); checks no password.

    It stands before :class:`RoleBackend`. A sign-in through a form or the admin site always has a
    request, and so an address to count failures against; a programmatic ``authenticate()`` without a
    request (a management command, a shell) has no address and is left to the next backend.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class RoleBackend(ModelBackend):
    """Django's model backend, plus: an active Admin holds every model permission.

    Admins configure the portal through the admin site; executives and product managers never get
    model permissions, so the admin site stays closed to them (they are not staff either).
    """

    def has_perm(self, user_obj, perm, obj=None) -> bool:
        if user_obj.is_active and getattr(user_obj, "role_enum", None) == Role.ADMIN:
            return True
        return super().has_perm(user_obj, perm, obj)

    def has_module_perms(self, user_obj, app_label) -> bool:
        if user_obj.is_active and getattr(user_obj, "role_enum", None) == Role.ADMIN:
            return True
        return super().has_module_perms(user_obj, app_label)
