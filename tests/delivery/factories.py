"""Delivery test data: catalog rows, billing rollups and helpers that send records through the real importers."""

import hashlib
import hmac
import json
from datetime import UTC, date, datetime
from decimal import Decimal

from apps.billing.models import BillingSource, CostRollup
from apps.catalog.models import Environment
from apps.delivery.services import delivery_api_ingest
from tests.factories import EnvironmentFactory, ServiceFactory, TeamFactory


def sha(name: str) -> str:
    """A full, stable commit SHA for a short name like 'c1'."""
    return hashlib.sha1(name.encode()).hexdigest()


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def iso(*args) -> str:
    return utc(*args).isoformat().replace("+00:00", "Z")


def environments() -> dict[str, Environment]:
    return {
        "prod": EnvironmentFactory(slug="prod", name="Production", kind="prod"),
        "dev": EnvironmentFactory(slug="dev", name="Development", kind="dev"),
        "uat": EnvironmentFactory(slug="uat", name="UAT", kind="uat"),
    }


def team_and_service(team: str, service: str, rate: str):
    t = TeamFactory(slug=team, name=team.title(), hourly_rate=Decimal(rate))
    return t, ServiceFactory(slug=service, name=service.upper(), team=t)


def rollup(*, day: date, service, environment, cost: str, source_name: str = "test billing") -> CostRollup:
    source, _ = BillingSource.objects.get_or_create(name=source_name)
    return CostRollup.objects.create(
        day=day,
        source=source,
        billing_period_start=day.replace(day=1),
        service=service,
        environment=environment,
        provider="AWS",
        billed_cost=Decimal(cost),
        effective_cost=Decimal(cost),
        line_items=1,
    )


def send(kind: str, items: list[dict], source: str = "api"):
    return delivery_api_ingest(kind=kind, items=items, source_slug=source)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(secret: str, payload: dict) -> tuple[bytes, str]:
    body = json.dumps(payload).encode()
    return body, sign(secret, body)
