from decimal import Decimal

import factory

from apps.accounts.models import User
from apps.accounts.roles import Role
from apps.catalog import models as catalog


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    role = Role.EXECUTIVE
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = catalog.Team

    slug = factory.Sequence(lambda n: f"team-{n}")
    name = factory.Sequence(lambda n: f"Team {n}")
    hourly_rate = Decimal("100.00")


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = catalog.Environment
        django_get_or_create = ["slug"]

    slug = "prod"
    name = "Production"
    kind = catalog.Environment.Kind.PROD


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = catalog.Service

    slug = factory.Sequence(lambda n: f"service-{n}")
    name = factory.Sequence(lambda n: f"Service {n}")
    team = factory.SubFactory(TeamFactory)
    unit_name = "1,000 predictions"


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = catalog.Product

    slug = factory.Sequence(lambda n: f"product-{n}")
    name = factory.Sequence(lambda n: f"Product {n}")
    usage_event_names = ["used"]
