from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import ApplicationError

from .models import ApiToken, User


@transaction.atomic
def api_token_create(
    *, user: User, name: str, scope: str = ApiToken.Scope.READ, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token and return it with its key, which is never retrievable again."""
    if scope not in ApiToken.Scope.values:
        raise ApplicationError(f"scope {scope!r} is not one of {', '.join(ApiToken.Scope.values)}")
    key = ApiToken.generate_key()
    token = ApiToken.objects.create(
        user=user,
        name=name.strip() or "API token",
        prefix=key[: ApiToken.PREFIX_LENGTH],
        key_hash=ApiToken.hash_key(key),
        scope=scope,
        expires_at=expires_at,
    )
    return token, key


def api_token_revoke(*, token: ApiToken, actor: User) -> ApiToken:
    if token.user_id != actor.pk and not actor.is_portal_admin:
        raise ApplicationError("only the token's owner or an admin can revoke it")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at", "updated_at"])
    return token
