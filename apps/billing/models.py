"""Billing: where exports come from, what each import did, the line items, their allocation and rollups."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.fields.json import JSONExact

from apps.catalog.models import Environment, Location, Service
from apps.core.models import TimeStampedModel

from .formats import FORMATS

MONEY = {"max_digits": 38, "decimal_places": 18}  # every digit a provider sends (KPIS.md: numeric(38,18))
QUANTITY = {"max_digits": 38, "decimal_places": 18, "null": True, "blank": True}
UNCHECKED_KEY = {"db_index": False, "db_constraint": False}  # see BillingLineItem


class WholeJSONField(models.JSONField):
    """JSON only ever read whole, never looked into by key: PostgreSQL's ``json`` (the text, checked) rather
    than ``jsonb``, whose binary form costs more to build than the rest of a bulk-written row's values.
    Filtering by the whole value (``extra=None``, ``extra={...}``) and ``isnull`` work everywhere; lookups
    into keys are not for this field."""

    def db_type(self, connection):
        return "json" if connection.vendor == "postgresql" else super().db_type(connection)

    def from_db_value(self, value, expression, connection):
        if value is not None and not isinstance(value, str):  # psycopg2 reads json columns itself
            return value
        return super().from_db_value(value, expression, connection)


@WholeJSONField.register_lookup
class _WholeExact(JSONExact):
    """json has no equality operator: the value is compared as jsonb."""

    def process_lhs(self, compiler, connection):
        sql, params = super().process_lhs(compiler, connection)
        return (f"({sql})::jsonb" if connection.vendor == "postgresql" else sql), params


class BillingSource(TimeStampedModel):
    """An admin-configured place billing exports appear: a local folder or glob, or an http(s) URL."""

    class Format(models.TextChoices):
        AUTO = "auto", "Detect from the header"

    FORMAT_CHOICES = [(Format.AUTO, "Detect from the header"), *FORMATS.items()]

    class Status(models.TextChoices):
        NEVER = "never", "Never pulled"
        OK = "ok", "OK"
        FAILING = "failing", "Failing"

    name = models.CharField(max_length=120, unique=True)
    format = models.CharField(max_length=32, choices=FORMAT_CHOICES, default=Format.AUTO)
    location = models.CharField(
        max_length=1000,
        blank=True,
        help_text="A folder, a glob such as /data/exports/*.csv.gz, or an http(s) URL. Empty: uploads only.",
    )
    auth_env_var = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of the environment variable holding the Authorization header value for the URL "
        "(credentials are never stored in the database).",
    )
    pull_every_minutes = models.PositiveIntegerField(default=60, validators=[MinValueValidator(5)])
    enabled = models.BooleanField(default=True)
    last_pulled_at = models.DateTimeField(null=True, blank=True)
    next_pull_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEVER)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SeenFile(models.Model):
    """A file a pull found, with the checksum or ETag it had, so an unchanged file is not imported again."""

    source = models.ForeignKey(BillingSource, on_delete=models.CASCADE, related_name="seen_files")
    name = models.CharField(max_length=1000)
    fingerprint = models.CharField(max_length=200, help_text="sha256 of the content, or the server's ETag")
    size = models.BigIntegerField(null=True, blank=True)
    seen_at = models.DateTimeField(auto_now=True)
    last_import = models.ForeignKey("BillingImport", null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "name"], name="seen_file_unique")]

    def __str__(self) -> str:
        return self.name


class BillingImport(models.Model):
    """One attempt to import one file: who started it, what it covered, its totals, errors and warnings."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Scheduled pull"
        UPLOAD = "upload", "Upload"
        COMMAND = "command", "Command line"
        API = "api", "API"

    source = models.ForeignKey(BillingSource, on_delete=models.CASCADE, related_name="imports")
    filename = models.CharField(max_length=1000)
    stored_path = models.CharField(max_length=1000, blank=True, help_text="Where the worker reads the file from.")
    checksum = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    format = models.CharField(max_length=32, blank=True)
    focus_version = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    periods = models.JSONField(default=list, help_text="Billing period starts (YYYY-MM-DD) the file covers.")
    currency = models.CharField(max_length=12, blank=True)
    rows_read = models.PositiveIntegerField(default=0)
    rows_imported = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    rows_replaced = models.PositiveIntegerField(default=0, help_text="Earlier rows of the same periods replaced.")
    billed_total = models.DecimalField(**MONEY, default=Decimal("0"))
    effective_total = models.DecimalField(**MONEY, default=Decimal("0"))
    error = models.TextField(blank=True)
    errors = models.JSONField(default=list, help_text="Row errors: row, column, value, message, expected.")
    warnings = models.JSONField(default=list, help_text="FOCUS conformance findings (not failures).")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["source", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.source} / {self.filename} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class AllocationRule(TimeStampedModel):
    """Assigns line items to a service, environment and location; ordered, the first match wins.

    A shared rule marks what it matches as shared cost, spread over services by direct cost (default),
    evenly, or by the weights given.
    """

    class Match(models.TextChoices):
        TAG = "tag", "Tag equals"
        SUB_ACCOUNT = "sub_account", "Sub-account id equals"
        RESOURCE = "resource", "Resource id or name matches (regular expression)"
        SERVICE_NAME = "service_name", "Provider service name equals"

    class Spread(models.TextChoices):
        DIRECT_COST = "direct_cost", "In proportion to direct cost"
        EVEN = "even", "Evenly"
        WEIGHTS = "weights", "By fixed weights"

    name = models.CharField(max_length=120)
    order = models.PositiveIntegerField(default=100, help_text="Lower runs first; the first matching rule wins.")
    enabled = models.BooleanField(default=True)
    match = models.CharField(max_length=16, choices=Match.choices)
    tag_key = models.CharField(max_length=200, blank=True, help_text="For tag rules: the tag's key.")
    value = models.CharField(max_length=500, help_text="The value to compare, or a regular expression.")
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    shared = models.BooleanField(default=False, help_text="Matched cost is shared and spread over services.")
    spread = models.CharField(max_length=16, choices=Spread.choices, default=Spread.DIRECT_COST)
    weights = models.JSONField(default=dict, blank=True, help_text='For "by fixed weights": {"service-slug": 2, ...}')

    class Meta:
        ordering = ["order", "pk"]

    def __str__(self) -> str:
        return self.name


class Reallocation(models.Model):
    """Re-allocating every stored billing period after the allocation rules changed, done by a worker.

    Changes made while one waits for a worker join it (it reads the rules as they are when it runs); a
    change made while one runs queues the next. Each (source, billing period) is re-allocated and rolled
    up in a transaction of its own, under the source's lock, so imports never interleave with it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    reason = models.CharField(max_length=300, help_text="The change that asked for it (the first one, if several).")
    changes = models.PositiveIntegerField(default=1, help_text="Rule changes it takes in.")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    periods_total = models.PositiveIntegerField(default=0)
    periods_done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"re-allocation {self.pk} ({self.status}): {self.reason}"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        return round(100 * self.periods_done / self.periods_total) if self.periods_total else 0


class BillingLineItem(models.Model):
    """One FOCUS row as imported (money and quantities with every digit), and where allocation put it."""

    # The line items are written in bulk (millions of rows per import): their foreign keys are kept by the
    # ORM's on_delete (CASCADE / SET_NULL) without database constraints, whose per-row checks would cost
    # more than the rows themselves, and allocation keys are indexed only where they are set. Line items
    # are read by (source, billing period), the one index every import maintains; none is kept on the
    # import (a third of the time of writing the rows), which only deleting an import would use.
    source = models.ForeignKey(
        BillingSource, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    billing_import = models.ForeignKey(
        BillingImport, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    row_number = models.PositiveIntegerField()
    billing_period_start = models.DateTimeField()
    billing_period_end = models.DateTimeField()
    charge_period_start = models.DateTimeField()
    charge_period_end = models.DateTimeField()
    billing_currency = models.CharField(max_length=12)
    billed_cost = models.DecimalField(**MONEY)
    effective_cost = models.DecimalField(**MONEY)
    list_cost = models.DecimalField(**QUANTITY)
    contracted_cost = models.DecimalField(**QUANTITY)
    list_unit_price = models.DecimalField(**QUANTITY)
    contracted_unit_price = models.DecimalField(**QUANTITY)
    consumed_quantity = models.DecimalField(**QUANTITY)
    consumed_unit = models.CharField(max_length=100, null=True, blank=True)
    pricing_quantity = models.DecimalField(**QUANTITY)
    pricing_unit = models.CharField(max_length=100, null=True, blank=True)
    pricing_category = models.CharField(max_length=40, null=True, blank=True)
    charge_category = models.CharField(max_length=20, null=True, blank=True)
    charge_class = models.CharField(max_length=20, null=True, blank=True)
    charge_frequency = models.CharField(max_length=20, null=True, blank=True)
    charge_description = models.TextField(null=True, blank=True)
    provider_name = models.CharField(max_length=100, null=True, blank=True)
    publisher_name = models.CharField(max_length=200, null=True, blank=True)
    invoice_issuer_name = models.CharField(max_length=200, null=True, blank=True)
    billing_account_id = models.CharField(max_length=200, null=True, blank=True)
    sub_account_id = models.CharField(max_length=200, null=True, blank=True)
    sub_account_name = models.CharField(max_length=300, null=True, blank=True)
    region_id = models.CharField(max_length=100, null=True, blank=True)
    region_name = models.CharField(max_length=100, null=True, blank=True)
    service_name = models.CharField(max_length=200, null=True, blank=True)
    service_category = models.CharField(max_length=60, null=True, blank=True)
    resource_id = models.TextField(null=True, blank=True)
    resource_name = models.TextField(null=True, blank=True)
    resource_type = models.CharField(max_length=200, null=True, blank=True)
    sku_id = models.CharField(max_length=200, null=True, blank=True)
    tags = models.JSONField(null=True, blank=True)
    extra = WholeJSONField(null=True, blank=True, help_text="Other non-null FOCUS and provider columns.")
    # Allocation, refreshed by each import and whenever the rules change.
    service = models.ForeignKey(
        Service, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", **UNCHECKED_KEY
    )
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", **UNCHECKED_KEY
    )
    location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", **UNCHECKED_KEY
    )
    allocation_rule = models.ForeignKey(
        AllocationRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", **UNCHECKED_KEY
    )
    is_shared = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["source", "billing_period_start"]),
            *(
                models.Index(
                    fields=[name], condition=models.Q(**{f"{name}__isnull": False}), name=f"billing_line_{name}"
                )
                for name in ("service", "environment", "location", "allocation_rule")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.row_number} {self.billed_cost}"

    @classmethod
    def before_bulk_load(cls, rows: list["BillingLineItem"], using: str) -> None:
        """Rows about to be written in bulk (a restored backup): on PostgreSQL their imports' partitions."""
        from .partitions import ensure_attached

        ensure_attached({row.billing_import_id for row in rows}, using=using)


class CostRollup(models.Model):
    """Daily cost per service x environment x provider x sub-account x region x location x charge category.

    Rebuilt for the (source, billing period) pairs an import touches, and when allocation rules change.
    Every page and API reads these rows, never the raw line items. ``service`` is null for unallocated
    cost; ``is_shared`` marks cost a shared-cost rule spread over services (``service`` is then the
    receiving service).
    """

    day = models.DateField()
    source = models.ForeignKey(BillingSource, on_delete=models.CASCADE, related_name="rollups")
    billing_period_start = models.DateField()
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    provider = models.CharField(max_length=100, blank=True)
    sub_account_id = models.CharField(max_length=200, blank=True)
    region = models.CharField(max_length=100, blank=True)
    charge_category = models.CharField(max_length=20, blank=True)
    is_shared = models.BooleanField(default=False)
    currency = models.CharField(max_length=12, default="USD")
    billed_cost = models.DecimalField(**MONEY)
    effective_cost = models.DecimalField(**MONEY)
    line_items = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["day", "service"]),
            models.Index(fields=["source", "billing_period_start"]),
            models.Index(fields=["service", "environment", "day"]),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.service_id or 'unallocated'} {self.effective_cost}"


class UnitVolume(models.Model):
    """Units of service delivered per day (e.g. predictions, checkouts), imported by CSV or the API."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="unit_volumes")
    day = models.DateField()
    units = models.DecimalField(max_digits=24, decimal_places=6, validators=[MinValueValidator(Decimal("0"))])
    source = models.CharField(max_length=40, default="import")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service", "day", "source"], name="unit_volume_unique")]
        ordering = ["service", "day"]

    def __str__(self) -> str:
        return f"{self.service_id} {self.day} {self.units}"
