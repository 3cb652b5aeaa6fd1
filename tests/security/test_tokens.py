"""API tokens: revocation is immediate, a read token never writes, an events:ingest token only sends data.

The routes are enumerated from the URL resolver, so a new API route is covered without being listed here.
"""

import uuid
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from apps.accounts.roles import Role
from apps.accounts.services import api_token_create
from apps.adoption.models import Event
from apps.telemetry.models import Point
from tests.adoption.factories import make_catalog
from tests.factories import EnvironmentFactory
from tests.telemetry.factories import CapacityPoolFactory

pytestmark = pytest.mark.django_db

UNSAFE = ("post", "put", "patch", "delete")
# Routes that do not take tokens at all: they authenticate by their own signature (HMAC).
SIGNED_ROUTES = {"delivery-webhook-github"}


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p


def _methods(pattern: URLPattern) -> set[str]:
    callback = pattern.callback
    actions = getattr(callback, "actions", None)
    if actions:  # a router's viewset route
        return set(actions)
    cls = getattr(callback, "cls", None)
    return {m for m in ("get", *UNSAFE) if cls is not None and hasattr(cls, m)}


def api_routes() -> list[tuple[str, str]]:
    """(route name, method) for every /api/v1/ route and method it answers."""
    routes = []
    for path, pattern in _walk(get_resolver().url_patterns):
        if path.startswith("api/v1/") and pattern.name not in SIGNED_ROUTES:
            routes += [(pattern.name, method) for method in sorted(_methods(pattern))]
    return routes


ROUTES = api_routes()
UNSAFE_ROUTES = [(name, method) for name, method in ROUTES if method in UNSAFE]
READ_ROUTES = [(name, method) for name, method in ROUTES if method == "get"]


def _url(name: str) -> str:
    pattern = next(p for _, p in _walk(get_resolver().url_patterns) if p.name == name)
    return reverse(name, kwargs=dict.fromkeys(pattern.pattern.regex.groupindex, "1"))


def _client(key: str) -> APIClient:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return c


def test_the_walk_finds_the_api():
    names = {name for name, _ in ROUTES}
    assert {"api-events-batch", "telemetry-push", "api-token-list", "team-list", "billing-units"} <= names
    assert len(UNSAFE_ROUTES) > 40


# --- Revocation ------------------------------------------------------------------------------------


def test_revoking_on_the_account_page_stops_the_token_on_its_next_request(users, client):
    token, key = api_token_create(user=users[Role.ADMIN], name="job", scope=ApiToken.Scope.WRITE)
    api = _client(key)
    assert api.get("/api/v1/me/").status_code == 200
    client.force_login(users[Role.ADMIN])
    client.post(reverse("accounts:token-revoke", args=[token.pk]))
    for request in (lambda: api.get("/api/v1/me/"), lambda: api.post("/api/v1/tokens/", {"name": "x"})):
        response = request()
        assert response.status_code == 401
        assert response.json()["detail"] == "Invalid, expired or revoked token."


def test_a_token_can_revoke_itself_and_is_dead_at_once(users):
    token, key = api_token_create(user=users[Role.PRODUCT_MANAGER], name="leaked", scope=ApiToken.Scope.WRITE)
    api = _client(key)
    assert api.delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    assert api.get("/api/v1/me/").status_code == 401


def test_deactivating_the_user_or_expiry_stops_the_token(users):
    _, key = api_token_create(user=users[Role.EXECUTIVE], name="a")
    _, expiring_key = api_token_create(
        user=users[Role.PRODUCT_MANAGER], name="b", expires_at=timezone.now() + timedelta(hours=1)
    )
    users[Role.EXECUTIVE].is_active = False
    users[Role.EXECUTIVE].save()
    assert _client(key).get("/api/v1/me/").status_code == 401
    assert _client(expiring_key).get("/api/v1/me/").status_code == 200
    ApiToken.objects.filter(name="b").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _client(expiring_key).get("/api/v1/me/").status_code == 401


def test_one_user_cannot_revoke_anothers_token(users):
    token, key = api_token_create(user=users[Role.EXECUTIVE], name="mine")
    _, other_key = api_token_create(user=users[Role.PRODUCT_MANAGER], name="theirs", scope=ApiToken.Scope.WRITE)
    assert _client(other_key).delete(f"/api/v1/tokens/{token.pk}/").status_code == 404
    assert _client(key).get("/api/v1/me/").status_code == 200


def test_pages_ignore_tokens(users):
    # Tokens are for the API: a page answers a token-only request with the login form.
    _, key = api_token_create(user=users[Role.ADMIN], name="rw", scope=ApiToken.Scope.WRITE)
    response = _client(key).post(reverse("accounts:token-create"), {"name": "x", "scope": "write"})
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]
    assert ApiToken.objects.count() == 1


# --- A read token never writes ---------------------------------------------------------------------


@pytest.fixture
def admin_read_key(users):
    return api_token_create(user=users[Role.ADMIN], name="ro", scope=ApiToken.Scope.READ)[1]


@pytest.mark.parametrize(("name", "method"), UNSAFE_ROUTES, ids=[f"{m.upper()} {n}" for n, m in UNSAFE_ROUTES])
def test_a_read_token_of_an_admin_cannot_write_anywhere(admin_read_key, name, method):
    response = getattr(_client(admin_read_key), method)(_url(name), {}, format="json")
    assert response.status_code == 403, f"{method.upper()} {name}: {response.status_code}"
    assert response.json()["detail"] == "This API token has the read scope only."


# --- events:ingest ---------------------------------------------------------------------------------


@pytest.fixture
def ingest_keys(users):
    return {
        role: api_token_create(user=users[role], name="ingest", scope=ApiToken.Scope.EVENTS_INGEST)[1]
        for role in (Role.PRODUCT_MANAGER, Role.ADMIN)
    }


def test_an_ingest_token_sends_adoption_events(ingest_keys, users):
    catalog = make_catalog(owner=users[Role.PRODUCT_MANAGER], other_owner=users[Role.ADMIN])
    product = next(iter(catalog["products"].values()))
    body = {
        "events": [
            {
                "event_id": str(uuid.uuid4()),
                "product": product.slug,
                "user_id": "emp-00042",
                "event": "trial_started",
                "timestamp": "2026-05-01T10:00:00Z",
            }
        ]
    }
    response = _client(ingest_keys[Role.PRODUCT_MANAGER]).post("/api/v1/events/batch/", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 1
    assert Event.objects.count() == 1


def test_an_admins_ingest_token_pushes_telemetry(ingest_keys):
    pool = CapacityPoolFactory(slug="gpu-a10g", environment=EnvironmentFactory(slug="prod"))
    body = {"points": [{"metric": "gpu_used", "pool": pool.slug, "timestamp": "2026-11-02T10:00:00Z", "value": 6.5}]}
    response = _client(ingest_keys[Role.ADMIN]).post("/api/v1/telemetry/", body, format="json")
    assert response.status_code == 200, response.content
    assert Point.objects.count() == 1
    # A product manager's ingest token stays within its role: the push is for admins.
    refused = _client(ingest_keys[Role.PRODUCT_MANAGER]).post("/api/v1/telemetry/", body, format="json")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Your role does not allow this action."


INGEST_ALLOWED = {("api-events-batch", "post"), ("telemetry-push", "post")}
INGEST_REFUSED = [r for r in ROUTES if r not in INGEST_ALLOWED]


@pytest.mark.parametrize(("name", "method"), INGEST_REFUSED, ids=[f"{m.upper()} {n}" for n, m in INGEST_REFUSED])
def test_an_ingest_token_reaches_nothing_else(ingest_keys, name, method):
    client = _client(ingest_keys[Role.ADMIN])
    response = getattr(client, method)(_url(name), {} if method != "get" else None, format="json")
    assert response.status_code == 403, f"{method.upper()} {name}: {response.status_code}"
    assert "events:ingest scope" in response.json()["detail"]


def test_an_ingest_token_cannot_read_the_schema_or_mint_a_broader_token(ingest_keys):
    client = _client(ingest_keys[Role.ADMIN])
    assert client.get("/api/schema/").status_code == 403
    assert client.post("/api/v1/tokens/", {"name": "escalate", "scope": "write"}, format="json").status_code == 403
    assert not ApiToken.objects.filter(name="escalate").exists()


def test_the_ingest_scope_is_offered_on_the_account_page_and_the_api(users, client):
    client.force_login(users[Role.PRODUCT_MANAGER])
    assert 'value="events:ingest"' in client.get(reverse("accounts:account")).content.decode()
    api = APIClient()
    api.force_authenticate(users[Role.PRODUCT_MANAGER])
    created = api.post("/api/v1/tokens/", {"name": "shelf-vision events", "scope": "events:ingest"}, format="json")
    assert created.status_code == 201
    assert created.json()["scope"] == "events:ingest"
