"""Every API operation fuzzed against its own OpenAPI schema with an admin's write token.

The schema is the one drf-spectacular serves at /api/schema/. Schemathesis generates valid and invalid
requests for each operation (positive and negative modes); each one is sent to the Django WSGI
application and the answer must not be a server error, must be a status the schema documents, with a
documented content type and a body matching the documented schema.

Paths with an id or slug get a stored object's key for about half of the generated requests, so the
detail, update and delete views run against real rows, not only their 404 branch.

The run is bounded (a few examples per operation, derandomized with a fixed seed, so every run sends
the same requests) to keep the whole file around a minute; see FUZZ_EXAMPLES and FUZZ_COVERAGE below for
a deeper local search.
"""

import os
import zlib
from datetime import timedelta
from decimal import Decimal

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.accounts.models import ApiToken
from apps.accounts.roles import Role
from apps.accounts.services import api_token_create
from apps.alerts.models import Alert, Silence
from apps.billing.models import AllocationRule, BillingImport, BillingSource
from apps.capacity.models import ForecastRun
from apps.catalog.models import Location
from apps.delivery.models import DeliverySource
from apps.kpis.models import Target
from tests.alerts.factories import ChannelFactory, RuleFactory
from tests.factories import EnvironmentFactory, ProductFactory, ServiceFactory, TeamFactory, UserFactory
from tests.telemetry.factories import CapacityPoolFactory, MLModelFactory, ModelVersionFactory

# Examples per operation and generation mode (valid and invalid requests). The coverage phase (every
# boundary case the schema defines: each field missing, null, too long ...) is thorough but takes about four
# times as long; OPSPORTAL_FUZZ_COVERAGE=1 adds it for a deeper local run. Probing undocumented methods on
# every path adds nothing here (DRF answers 405 for them), so it is always skipped.
FUZZ_EXAMPLES = int(os.environ.get("OPSPORTAL_FUZZ_EXAMPLES", "10"))
FUZZ_COVERAGE = os.environ.get("OPSPORTAL_FUZZ_COVERAGE", "0") == "1"
CONFIG = schemathesis.Config.from_dict(
    {"phases": {"coverage": {"enabled": FUZZ_COVERAGE, "unexpected-methods": []}}, "seed": 20261127}
)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _openapi_schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


schema = schemathesis.openapi.from_dict(_openapi_schema(), config=CONFIG)


@pytest.fixture
def wsgi_app():
    """The Django WSGI application, inside the test's transaction (as Django's test client does it)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def stored(db, settings, tmp_path):
    """One of each object the API addresses by id or slug, and an admin's write token."""
    settings.UPLOAD_DIR = tmp_path / "uploads"
    admin = UserFactory(username="fuzz-admin", role=Role.ADMIN)
    token, key = api_token_create(user=admin, name="fuzz", scope=ApiToken.Scope.WRITE)
    team = TeamFactory(slug="fuzz-team")
    env = EnvironmentFactory()
    service = ServiceFactory(slug="fuzz-service", team=team)
    product = ProductFactory(slug="fuzz-product", owner=admin)
    location = Location.objects.create(code="store-0001", name="Store 1", kind=Location.Kind.STORE)
    model = MLModelFactory(slug="fuzz-model", service=service, team=team)
    version = ModelVersionFactory(model=model)
    pool = CapacityPoolFactory(slug="fuzz-pool", environment=env, service=service)
    source = BillingSource.objects.create(name="fuzz billing")
    billing_import = BillingImport.objects.create(source=source, filename="2026-10.csv", trigger="upload")
    rule = AllocationRule.objects.create(name="fuzz rule", match=AllocationRule.Match.TAG, tag_key="app", value="x")
    now = timezone.now()
    run = ForecastRun.objects.create(
        kind=ForecastRun.Kind.POOL_DEMAND, grain="day", data_start=now - timedelta(days=30), data_end=now, horizon=7
    )
    channel = ChannelFactory(name="fuzz channel")
    alert_rule = RuleFactory(name="fuzz alert rule", owner_user=admin)
    silence = Silence.objects.create(
        rule=alert_rule, starts_at=now, ends_at=now + timedelta(hours=1), comment="maintenance", created_by=admin
    )
    alert = Alert.objects.create(
        rule=alert_rule,
        rule_name=alert_rule.name,
        fingerprint="0123456789abcdef",
        severity=alert_rule.severity,
        threshold=alert_rule.threshold,
        started_at=now,
        last_evaluated_at=now,
    )
    target = Target.objects.create(kpi="mau", product=product, month=now.date().replace(day=1), value=Decimal(100))
    webhook = DeliverySource.objects.create(
        slug="fuzz-github", name="fuzz github", kind=DeliverySource.Kind.GITHUB, secret_env_var="OPSPORTAL_DELIVERY_X"
    )
    keys = {
        "/api/v1/adoption/targets/": target.pk,
        "/api/v1/alerts/": alert.pk,
        "/api/v1/alerts/channels/": channel.pk,
        "/api/v1/alerts/rules/": alert_rule.pk,
        "/api/v1/alerts/silences/": silence.pk,
        "/api/v1/billing/imports/": billing_import.pk,
        "/api/v1/billing/rules/": rule.pk,
        "/api/v1/billing/sources/": source.pk,
        "/api/v1/capacity/forecast-runs/": run.pk,
        "/api/v1/capacity/pools/": pool.slug,
        "/api/v1/catalog/environments/": env.slug,
        "/api/v1/catalog/locations/": location.code,
        "/api/v1/catalog/model-versions/": version.pk,
        "/api/v1/catalog/models/": model.slug,
        "/api/v1/catalog/pools/": pool.slug,
        "/api/v1/catalog/products/": product.slug,
        "/api/v1/catalog/services/": service.slug,
        "/api/v1/catalog/teams/": team.slug,
        "/api/v1/delivery/webhooks/github/": webhook.slug,
        "/api/v1/tokens/": token.pk,
    }
    return {"headers": {"Authorization": f"Token {key}"}, "keys": keys}


def _use_stored_keys(case, keys: dict) -> None:
    """Point about half of the requests with a path parameter at a stored object (deterministically)."""
    if not case.path_parameters:
        return
    prefix = case.operation.path.split("{", 1)[0]
    if prefix not in keys:
        return
    for name, value in list(case.path_parameters.items()):
        if zlib.crc32(repr(value).encode()) % 2 == 0:
            case.path_parameters[name] = keys[prefix]


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_operation_answers_as_documented(case, stored, wsgi_app):
    _use_stored_keys(case, stored["keys"])
    response = case.call(app=wsgi_app, headers=stored["headers"])
    case.validate_response(response, checks=CHECKS, headers=stored["headers"])
