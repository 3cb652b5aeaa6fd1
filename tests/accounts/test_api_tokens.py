import pytest
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from apps.accounts.roles import Role
from apps.accounts.services import api_token_create

pytestmark = pytest.mark.django_db


def _client(key: str) -> APIClient:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return c


def test_token_authenticates_as_its_user_and_stores_only_a_hash(users):
    token, key = api_token_create(user=users[Role.EXECUTIVE], name="dashboard")
    assert key not in token.key_hash and token.key_hash == ApiToken.hash_key(key)
    response = _client(key).get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json()["username"] == users[Role.EXECUTIVE].username
    assert response.json()["role"] == "executive"


def test_revoked_token_is_refused(users):
    token, key = api_token_create(user=users[Role.EXECUTIVE], name="old")
    client = _client(key)
    assert client.get("/api/v1/me/").status_code == 200
    owner = APIClient()
    owner.force_authenticate(users[Role.EXECUTIVE])  # the owner, signed in, revokes it
    assert owner.delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_unknown_token_is_refused_with_401():
    response = _client("not-a-real-token").get("/api/v1/me/")
    assert response.status_code == 401


def test_read_scope_token_cannot_write_even_for_an_admin(users):
    _, key = api_token_create(user=users[Role.ADMIN], name="ro", scope=ApiToken.Scope.READ)
    response = _client(key).post(
        "/api/v1/catalog/teams/", {"slug": "x", "name": "X", "hourly_rate": "10"}, format="json"
    )
    assert response.status_code == 403
    assert "read scope" in response.json()["detail"]


def test_write_scope_token_writes_for_an_admin_only(users):
    _, admin_key = api_token_create(user=users[Role.ADMIN], name="rw", scope=ApiToken.Scope.WRITE)
    _, exec_key = api_token_create(user=users[Role.EXECUTIVE], name="rw", scope=ApiToken.Scope.WRITE)
    payload = {"slug": "data-eng", "name": "Data engineering", "hourly_rate": "95.50"}
    assert _client(exec_key).post("/api/v1/catalog/teams/", payload, format="json").status_code == 403
    created = _client(admin_key).post("/api/v1/catalog/teams/", payload, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["hourly_rate"] == "95.50"


def test_token_created_over_the_api_is_shown_once(users):
    client = APIClient()
    client.force_authenticate(users[Role.PRODUCT_MANAGER])
    created = client.post("/api/v1/tokens/", {"name": "events", "scope": "write"}, format="json")
    assert created.status_code == 201
    key = created.json()["key"]
    listed = client.get("/api/v1/tokens/").json()["results"]
    assert [t["name"] for t in listed] == ["events"]
    assert "key" not in listed[0]
    assert _client(key).get("/api/v1/me/").json()["username"] == users[Role.PRODUCT_MANAGER].username


def test_token_page_creates_and_revokes(client, users):
    client.force_login(users[Role.EXECUTIVE])
    response = client.post("/accounts/me/tokens/", {"name": "laptop", "scope": "read"}, follow=True)
    assert response.status_code == 200
    token = ApiToken.objects.get(user=users[Role.EXECUTIVE], name="laptop")
    assert "not shown again" in response.content.decode()
    client.post(f"/accounts/me/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_token_form_errors_are_shown(client, users):
    client.force_login(users[Role.EXECUTIVE])
    response = client.post("/accounts/me/tokens/", {"name": "", "scope": "root"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "This field is required" in body
    assert "Select a valid choice" in body
    assert not ApiToken.objects.exists()
