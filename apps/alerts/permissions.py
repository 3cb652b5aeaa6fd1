"""Who may act on an alert: admins on any, a product manager on the alerts assigned to them; executives read."""

from apps.accounts.permissions import user_role
from apps.accounts.roles import Role

from .models import Alert


def can_act_on_alert(user, alert: Alert) -> bool:
    role = user_role(user)
    if role == Role.ADMIN:
        return True
    return role == Role.PRODUCT_MANAGER and alert.owner_user_id == user.pk
