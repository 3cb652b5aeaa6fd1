"""Adoption data: product events (raw and rolled up per user and day), NPS campaigns and responses.

Events are append-only and unique by their client-generated ``event_id``; every metric is read from
the daily rollup :class:`UserDay` (or, for the funnel and activation, which need exact timestamps,
from the events themselves).
"""

from datetime import date

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from apps.catalog.models import Location, Product
from apps.core.models import TimeStampedModel

EPOCH = date(1970, 1, 1)


class EventName:
    """The standard adoption events; a product's own usage events are listed on the product."""

    TRIAL_REQUESTED = "trial_requested"
    TRIAL_STARTED = "trial_started"
    SECOND_TRIAL_REQUESTED = "second_trial_requested"
    DEMO_ATTENDED = "demo_attended"
    TRAINING_COMPLETED = "training_completed"
    RATING_SUBMITTED = "rating_submitted"

    ALL = (
        TRIAL_REQUESTED,
        TRIAL_STARTED,
        SECOND_TRIAL_REQUESTED,
        DEMO_ATTENDED,
        TRAINING_COMPLETED,
        RATING_SUBMITTED,
    )


TRIAL_EVENTS = (EventName.TRIAL_REQUESTED, EventName.TRIAL_STARTED, EventName.SECOND_TRIAL_REQUESTED)


def day_number(day: date) -> int:
    """Days since 1970-01-01: lets rolling windows use integer arithmetic on every database."""
    return (day - EPOCH).days


def month_number(day: date) -> int:
    """Months since year 0 (``year * 12 + month - 1``): cohort offsets are plain subtraction."""
    return day.year * 12 + day.month - 1


def month_from_number(number: int) -> date:
    return date(number // 12, number % 12 + 1, 1)


class Event(models.Model):
    """One product event as sent by the event API or a CSV import.

    ``location``, ``region``, ``role`` and ``rating`` are copied out of ``properties`` on ingest so the
    rollups can group by them; ``properties`` keeps everything that was sent.
    """

    class Source(models.TextChoices):
        API = "api", "Event API"
        CSV = "csv", "CSV import"

    event_id = models.UUIDField(unique=True, help_text="Client-generated; a repeated id is a retry and is ignored.")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="adoption_events", db_index=False)
    user_id = models.CharField(max_length=128)
    name = models.CharField(max_length=64)
    timestamp = models.DateTimeField(help_text="When it happened (UTC).")
    day = models.DateField(help_text="The UTC day of the timestamp.")
    # Checked on ingest and protected from deletion by Django; no database constraint, which would
    # cost two deferred look-ups per row at commit on the hottest insert of the portal.
    location = models.ForeignKey(
        Location,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    region = models.ForeignKey(
        Location,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    role = models.CharField(max_length=64, blank=True, default="")
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField()
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.API)
    backfill = models.BooleanField(default=False, help_text="Received more than two days after it happened.")

    class Meta:
        # Two indexes only, for the insert rate: the unique id, and the day index whose pages for recent
        # days stay in memory. Funnel look-ups use TrialEvent, a small table the rollup keeps.
        indexes = [
            # Rebuilding one product-day of the rollup; a user's events on one day (funnel window edges).
            models.Index(fields=["product", "day", "user_id"], name="adoption_event_day_user"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.user_id} {self.timestamp:%Y-%m-%d %H:%M}"


class UserDay(models.Model):
    """Daily rollup: one row per product, day, user, location and role, with counts of what they did.

    Distinct-user metrics (MAU, trial requests, ...) count distinct ``user_id`` over these rows; a user
    seen at two stores on a day has a row for each, so counts per store include them in both and the
    total counts them once.
    """

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    day_number = models.IntegerField(help_text="Days since 1970-01-01.")
    month_number = models.IntegerField(help_text="year * 12 + month - 1.")
    user_id = models.CharField(max_length=128)
    location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    region = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    role = models.CharField(max_length=64, blank=True, default="")
    events = models.PositiveIntegerField(default=0)
    usage_events = models.PositiveIntegerField(default=0, help_text="Events that count as using the product.")
    sessions = models.PositiveIntegerField(default=0, help_text="Usage sessions (a new one after 30 min idle).")
    trial_requests = models.PositiveIntegerField(default=0)
    trial_starts = models.PositiveIntegerField(default=0)
    second_trial_requests = models.PositiveIntegerField(default=0)
    demos = models.PositiveIntegerField(default=0)
    trainings = models.PositiveIntegerField(default=0)
    ratings = models.PositiveIntegerField(default=0)
    rating_sum = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["product", "day"], name="adoption_userday_day"),
            models.Index(fields=["product", "user_id", "day"], name="adoption_userday_user"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} {self.day} {self.user_id}"


class TrialEvent(models.Model):
    """The trial events (requested, started, second trial) copied out of :class:`Event` by the rollup
    refresh: a small, indexed table for the funnel's "first trial event after t" look-ups."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    user_id = models.CharField(max_length=128)
    name = models.CharField(max_length=64)
    timestamp = models.DateTimeField()
    location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    region = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    role = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["product", "name", "user_id", "timestamp"], name="adoption_trial_steps"),
            models.Index(fields=["product", "day"], name="adoption_trial_day"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.user_id} {self.timestamp:%Y-%m-%d %H:%M}"


class RollupMark(models.Model):
    """A product-day whose rollup is out of date. ``token`` changes on every new batch for the day, so
    a refresh that read the day before a newer batch arrived leaves the mark in place."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    token = models.UUIDField()
    marked_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["product", "day"], name="adoption_rollupmark_unique")]

    def __str__(self) -> str:
        return f"{self.product_id} {self.day}"


class RollupState(models.Model):
    """The usage events a product's rollup was built with: when the product's list changes, every day
    is rebuilt, so "active" always means what the product says today."""

    product = models.OneToOneField(Product, on_delete=models.CASCADE, related_name="+")
    usage_event_names = models.JSONField(default=list)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rollup of product {self.product_id}"


class NpsCampaign(TimeStampedModel):
    """One NPS survey of a product ("Q3 pulse"); an employee answers it once, on its link or by API."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="nps_campaigns")
    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=120)
    question = models.CharField(max_length=255, blank=True)
    opens_on = models.DateField()
    closes_on = models.DateField(null=True, blank=True, help_text="Last day answers are taken; empty: open-ended.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-opens_on", "name"]

    def __str__(self) -> str:
        return f"{self.product} – {self.name}"

    @property
    def question_text(self) -> str:
        return self.question or f"How likely are you to recommend {self.product.name} to a colleague?"

    def is_open_on(self, day: date) -> bool:
        return self.opens_on <= day and (self.closes_on is None or day <= self.closes_on)


class NpsResponse(models.Model):
    class Source(models.TextChoices):
        SURVEY = "survey", "Survey link"
        API = "api", "API"

    campaign = models.ForeignKey(NpsCampaign, on_delete=models.CASCADE, related_name="responses")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+", db_index=False)
    respondent = models.CharField(max_length=150, help_text="The employee's user id (a username on the survey page).")
    score = models.PositiveSmallIntegerField(validators=[MinValueValidator(0), MaxValueValidator(10)])
    comment = models.TextField(blank=True)
    submitted_at = models.DateTimeField()
    source = models.CharField(max_length=8, choices=Source.choices)

    class Meta:
        ordering = ["-submitted_at"]
        indexes = [models.Index(fields=["product", "submitted_at"], name="adoption_nps_product_time")]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "respondent"], name="adoption_nps_once_per_campaign"),
            models.CheckConstraint(condition=Q(score__lte=10), name="adoption_nps_score_0_10"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign.slug} {self.respondent}: {self.score}"
