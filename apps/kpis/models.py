"""Monthly targets for any KPI, scoped to the whole organisation, a product or a service.

Status against a target (progress, red/amber/green, projection) is computed by the pure functions in
:mod:`apps.kpis.targets`; this model only stores what was agreed.
"""

from datetime import date

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from apps.core.models import TimeStampedModel

from .registry import Direction


class TargetQuerySet(models.QuerySet):
    def for_month(self, month: date) -> "TargetQuerySet":
        return self.filter(month=month.replace(day=1))

    def for_scope(self, *, product_id: int | None = None, service_id: int | None = None) -> "TargetQuerySet":
        """Targets of exactly this scope: ``None`` means "not scoped by it" (an organisation-wide target)."""
        return self.filter(product_id=product_id, service_id=service_id)


class Target(TimeStampedModel):
    """The value a KPI should reach in one calendar month.

    ``kpi`` is the KPI's key (e.g. ``"demos"``, ``"mau"``, ``"unit_cost"``). A target with neither
    product nor service is organisation-wide. ``direction`` says whether a value above the target is
    good (up) or bad (down), so the colour follows the KPI, not the sign of the change.
    """

    class DirectionChoice(models.TextChoices):
        UP = Direction.UP_IS_GOOD, "Up is good"
        DOWN = Direction.DOWN_IS_GOOD, "Down is good"

    kpi = models.CharField(max_length=64)
    product = models.ForeignKey(
        "catalog.Product", null=True, blank=True, on_delete=models.CASCADE, related_name="kpi_targets"
    )
    service = models.ForeignKey(
        "catalog.Service", null=True, blank=True, on_delete=models.CASCADE, related_name="kpi_targets"
    )
    month = models.DateField(help_text="The first day of the month the target is for.")
    value = models.DecimalField(max_digits=24, decimal_places=6)
    direction = models.CharField(max_length=4, choices=DirectionChoice.choices, default=DirectionChoice.UP)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = TargetQuerySet.as_manager()

    class Meta:
        ordering = ["-month", "kpi"]
        indexes = [models.Index(fields=["kpi", "month"])]
        # One target per KPI, scope and month. NULL never equals NULL in a unique index, so each
        # combination of "scoped or not" gets its own partial unique constraint (works on SQLite and
        # PostgreSQL alike, unlike NULLS NOT DISTINCT).
        constraints = [
            models.UniqueConstraint(
                fields=["kpi", "month"],
                condition=Q(product__isnull=True, service__isnull=True),
                name="target_unique_org_month",
            ),
            models.UniqueConstraint(
                fields=["kpi", "product", "month"],
                condition=Q(product__isnull=False, service__isnull=True),
                name="target_unique_product_month",
            ),
            models.UniqueConstraint(
                fields=["kpi", "service", "month"],
                condition=Q(product__isnull=True, service__isnull=False),
                name="target_unique_service_month",
            ),
            models.UniqueConstraint(
                fields=["kpi", "product", "service", "month"],
                condition=Q(product__isnull=False, service__isnull=False),
                name="target_unique_product_service_month",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kpi} {self.month:%Y-%m} {self.scope_label}: {self.value.normalize():f}"

    @property
    def scope_label(self) -> str:
        parts = [str(p) for p in (self.product, self.service) if p is not None]
        return " / ".join(parts) or "All"

    @property
    def direction_enum(self) -> Direction:
        return Direction(self.direction)

    def clean(self) -> None:
        if self.month and self.month.day != 1:
            raise ValidationError({"month": f"{self.month.isoformat()} is not the first day of a month"})
