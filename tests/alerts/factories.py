from decimal import Decimal

import factory

from apps.accounts.roles import Role
from apps.alerts.models import AlertRule, NotificationChannel
from tests.factories import UserFactory


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NotificationChannel

    name = factory.Sequence(lambda n: f"Channel {n}")
    kind = NotificationChannel.Kind.EMAIL
    email_to = factory.LazyFunction(lambda: ["oncall@example.com"])
    backoff_seconds = 30
    max_attempts = 5
    timeout_seconds = 5


class RuleFactory(factory.django.DjangoModelFactory):
    """A p95 latency rule over every series of a model; tests set the scope and thresholds they need."""

    class Meta:
        model = AlertRule
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Rule {n}")
    metric = AlertRule.Metric.LATENCY_P95
    comparison = AlertRule.Comparison.GT
    threshold = Decimal("500")
    window_minutes = 60
    consecutive_breaches = 3
    no_data = AlertRule.NoData.KEEP
    severity = AlertRule.Severity.CRITICAL
    group_by = factory.LazyFunction(lambda: ["model", "version", "environment"])
    owner_user = factory.SubFactory(
        UserFactory, username=factory.Sequence(lambda n: f"owner{n}"), role=Role.PRODUCT_MANAGER
    )
    group_interval_minutes = 5
    repeat_interval_minutes = 240

    @factory.post_generation
    def channels(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.channels.set(extracted)
