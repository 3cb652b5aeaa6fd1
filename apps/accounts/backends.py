from django.contrib.auth.backends import ModelBackend

from .roles import Role


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
