import hashlib
import secrets

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from apps.core.models import TimeStampedModel

from .roles import Role


class User(AbstractUser):
    class RoleChoice(models.TextChoices):
        EXECUTIVE = Role.EXECUTIVE, "Executive"
        PRODUCT_MANAGER = Role.PRODUCT_MANAGER, "Product manager"
        ADMIN = Role.ADMIN, "Admin"

    role = models.CharField(max_length=32, choices=RoleChoice.choices, default=RoleChoice.EXECUTIVE)
    digest_subscribed = models.BooleanField(default=False, help_text="Receive the weekly KPI digest by email.")

    @property
    def role_enum(self) -> Role | None:
        if self.is_superuser:
            return Role.ADMIN
        return Role(self.role) if self.role else None

    @property
    def is_portal_admin(self) -> bool:
        return self.is_active and self.role_enum == Role.ADMIN

    def save(self, *args, **kwargs):
        # The Django admin site is the portal admins' configuration screen: staff follows the role.
        self.is_staff = self.is_superuser or self.role == Role.ADMIN
        if kwargs.get("update_fields") is not None and "role" in kwargs["update_fields"]:
            kwargs["update_fields"] = {*kwargs["update_fields"], "is_staff"}
        super().save(*args, **kwargs)


class ApiTokenQuerySet(models.QuerySet):
    def active(self) -> "ApiTokenQuerySet":
        now = timezone.now()
        return self.filter(revoked_at__isnull=True, user__is_active=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(TimeStampedModel):
    """A per-user API key. Only its SHA-256 is stored; the key is shown once, when it is created."""

    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Read and write"
        # For a product or batch job that only sends data: it cannot read anything back.
        EVENTS_INGEST = "events:ingest", "Send adoption events and telemetry only"

    PREFIX_LENGTH = 8

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=PREFIX_LENGTH, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.READ)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @staticmethod
    def generate_key() -> str:
        return secrets.token_urlsafe(32)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())
