"""The portal-wide audit trail: every change to configuration (sources, rules, targets, catalog, users,
tokens, schedules), with who made it, when, through what, and the field values before and after.

Entries are written by the signal handlers in :mod:`apps.audit.recording` for the models listed in
:mod:`apps.audit.registry`, so every path (pages, API, admin site, shell, tasks) is covered. Secrets are
never stored: fields named like passwords, hashes and secrets are masked before an entry is written.
"""

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models


class AuditEntry(models.Model):
    class Action(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        DELETED = "deleted", "Deleted"

    class Via(models.TextChoices):
        PAGE = "page", "Page"
        API = "api", "API"
        ADMIN = "admin", "Admin site"
        COMMAND = "command", "Command"
        TASK = "task", "Background task"
        SYSTEM = "system", "System"

    at = models.DateTimeField(db_index=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(
        max_length=150, help_text="The user's name, or 'system' for changes made without a signed-in user."
    )
    token_name = models.CharField(max_length=120, blank=True, help_text="The API token the change was made with.")
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=250)
    action = models.CharField(max_length=10, choices=Action.choices)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    changed_fields = models.JSONField(default=list, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    via = models.CharField(max_length=10, choices=Via.choices, default=Via.SYSTEM)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [
            models.Index(fields=["content_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["-at"], name="audit_at_idx"),
        ]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.content_type.model} {self.object_repr}"

    @property
    def changes(self) -> list[tuple[str, object, object]]:
        """(field, before, after) for each changed field; on creation and deletion, every field."""
        before, after = self.before or {}, self.after or {}
        if self.action == self.Action.UPDATED:
            names = list(self.changed_fields)
        else:
            names = list((after if self.before is None else before).keys())
        return [(name, before.get(name), after.get(name)) for name in names]
