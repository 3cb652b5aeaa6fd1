"""Adoption test data: a small catalog (two regions, four stores, three products) and event builders."""

import uuid
from datetime import datetime

import factory

from apps.accounts.models import ApiToken
from apps.accounts.roles import Role
from apps.accounts.services import api_token_create
from apps.adoption.models import NpsCampaign
from apps.catalog.models import Location
from tests.factories import ProductFactory, UserFactory

STORES = {
    "store-0001": "region-north",
    "store-0002": "region-north",
    "store-0003": "region-south",
    "store-0004": "region-south",
}


def make_catalog(*, owner=None, other_owner=None) -> dict:
    """Regions north and south with two stores each; products alpha and beta (owned by ``owner``) and gamma."""
    regions = {}
    for code in sorted(set(STORES.values())):
        regions[code] = Location.objects.create(code=code, name=code.title(), kind=Location.Kind.REGION)
    stores = {
        code: Location.objects.create(code=code, name=f"Store {code[-1]}", kind=Location.Kind.STORE, parent=regions[r])
        for code, r in STORES.items()
    }
    owner = owner or UserFactory(username="alpha-pm", role=Role.PRODUCT_MANAGER)
    other_owner = other_owner or UserFactory(username="gamma-pm", role=Role.PRODUCT_MANAGER)
    products = {
        "alpha": ProductFactory(slug="alpha", name="Alpha", owner=owner, usage_event_names=["alpha_used"]),
        "beta": ProductFactory(slug="beta", name="Beta", owner=owner, usage_event_names=["beta_opened", "beta_done"]),
        "gamma": ProductFactory(slug="gamma", name="Gamma", owner=other_owner, usage_event_names=["gamma_used"]),
    }
    return {"regions": regions, "stores": stores, "products": products, "owner": owner, "other_owner": other_owner}


def ev(
    product: str, user: str, name: str, ts: datetime, *, location=None, role=None, rating=None, event_id=None, **extra
):
    props = {}
    if location:
        props["location"] = location
    if role:
        props["role"] = role
    if rating is not None:
        props["rating"] = rating
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "product": product,
        "user_id": user,
        "event": name,
        "timestamp": ts if isinstance(ts, str) else ts.isoformat(),
        "properties": props,
        **extra,
    }


def write_token(user) -> str:
    _, key = api_token_create(user=user, name="ingest", scope=ApiToken.Scope.WRITE)
    return key


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NpsCampaign

    slug = factory.Sequence(lambda n: f"campaign-{n}")
    name = factory.Sequence(lambda n: f"Pulse {n}")
    opens_on = factory.LazyFunction(lambda: datetime(2025, 1, 1).date())
