"""Sign-in rate limiting: too many failures for one username from one address lock that pair out for a while."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import authenticate
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.roles import Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
PASSWORD = "pw-for-tests"


@pytest.fixture
def alice():
    return UserFactory(username="alice", role=Role.EXECUTIVE)


def _sign_in(client: Client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def _fail_until_locked(client: Client, username: str, ip: str = "10.0.0.1"):
    responses = [_sign_in(client, username, "wrong", ip) for _ in range(settings.AXES_FAILURE_LIMIT)]
    return responses


def test_defaults_are_five_failures_and_a_fifteen_minute_cool_off():
    assert settings.AXES_ENABLED is True
    assert settings.AXES_FAILURE_LIMIT == 5
    assert timedelta(minutes=15) == settings.AXES_COOLOFF_TIME


def test_failures_below_the_limit_show_the_usual_message_and_the_right_password_still_works(alice):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = _sign_in(client, "alice", "wrong")
        assert response.status_code == 200
        assert "did not match" in response.content.decode()
    response = _sign_in(client, "alice", PASSWORD)
    assert response.status_code == 302
    # A successful sign-in clears the count: the next failures start again from zero.
    assert not AccessAttempt.objects.filter(username="alice", failures_since_start__gt=0).exists()


def test_the_limit_locks_out_even_the_right_password_with_a_clear_message(alice):
    client = Client()
    responses = _fail_until_locked(client, "alice")
    assert [r.status_code for r in responses[:-1]] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    locked = responses[-1]
    assert locked.status_code == 429
    body = locked.content.decode()
    assert "Too many failed sign-in attempts. Try again in 15 minutes" in body
    assert 'id="id_username"' in body  # still the sign-in page, not a bare error

    # The right password is refused too while the lockout lasts, and the session stays anonymous.
    response = _sign_in(client, "alice", PASSWORD)
    assert response.status_code == 429
    assert "Try again in 15 minutes" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("kpis:overview")).status_code == 302


def test_the_lockout_is_per_username_and_address(alice):
    UserFactory(username="bob", role=Role.EXECUTIVE)
    _fail_until_locked(Client(), "alice", ip="10.0.0.1")
    # Same user from another address, and another user from the same address, sign in normally.
    assert _sign_in(Client(), "alice", PASSWORD, ip="10.0.0.2").status_code == 302
    assert _sign_in(Client(), "bob", PASSWORD, ip="10.0.0.1").status_code == 302


def test_the_lockout_ends_after_the_cool_off(alice):
    _fail_until_locked(Client(), "alice")
    assert _sign_in(Client(), "alice", PASSWORD).status_code == 429
    # Sixteen minutes later (the attempt's clock moved back rather than waiting).
    AccessAttempt.objects.filter(username="alice").update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert _sign_in(Client(), "alice", PASSWORD).status_code == 302


def test_an_admin_sees_and_clears_a_lockout_in_the_admin_site(alice, admin_client_portal):
    _fail_until_locked(Client(), "alice")
    changelist = admin_client_portal.get("/admin/axes/accessattempt/?locked_out=yes")
    assert changelist.status_code == 200
    assert "alice" in changelist.content.decode()

    attempt = AccessAttempt.objects.get(username="alice")
    response = admin_client_portal.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert _sign_in(Client(), "alice", PASSWORD).status_code == 302


def test_lower_roles_cannot_see_or_clear_lockouts(alice, role_client):
    _fail_until_locked(Client(), "alice")
    for role in (Role.EXECUTIVE, Role.PRODUCT_MANAGER):
        response = role_client(role).get("/admin/axes/accessattempt/")
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert AccessAttempt.objects.filter(username="alice").exists()


def test_the_admin_site_login_is_rate_limited_too(alice):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post("/admin/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR="10.0.0.9")
    assert response.status_code == 429
    assert _sign_in(Client(), "alice", PASSWORD, ip="10.0.0.9").status_code == 429


def test_a_forged_forwarded_for_header_does_not_escape_the_lockout(alice):
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            LOGIN, {"username": "alice", "password": "wrong"}, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"1.2.3.{n}"
        )
    response = client.post(
        LOGIN, {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="9.9.9.9"
    )
    assert response.status_code == 429


def test_authenticate_without_a_request_still_checks_the_password(alice):
    # Management commands and the shell call authenticate() with no request (no address to count).
    assert authenticate(username="alice", password=PASSWORD) == alice
    assert authenticate(username="alice", password="wrong") is None


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "expected"),
    [
        (1, "203.0.113.7", "203.0.113.7"),  # the proxy recorded the client
        (1, "6.6.6.6, 203.0.113.7", "203.0.113.7"),  # the client's forged entry is ignored
        (2, "6.6.6.6, 203.0.113.7, 10.0.0.3", "203.0.113.7"),  # two proxies: the second entry from the right
        (1, "", "10.0.0.2"),  # no header: the proxy's own address
        (2, "203.0.113.7", "10.0.0.2"),  # shorter than the proxies in front: not trusted
        (1, "not-an-address", "10.0.0.2"),
    ],
)
def test_behind_a_proxy_the_address_is_the_one_the_proxies_recorded(settings, rf, proxies, forwarded_for, expected):
    from apps.accounts.lockout import client_address

    settings.BEHIND_PROXY, settings.PROXY_COUNT = True, proxies
    request = rf.post(LOGIN, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded_for)
    assert client_address(request) == expected


def test_without_a_proxy_the_forwarded_for_header_is_ignored(settings, rf):
    from apps.accounts.lockout import client_address

    settings.BEHIND_PROXY = False
    assert client_address(rf.post(LOGIN, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7")) == "10.0.0.2"


def test_behind_a_proxy_clients_are_locked_out_separately(settings, alice):
    settings.BEHIND_PROXY, settings.PROXY_COUNT = True, 1
    proxy = "10.0.0.254"
    for _ in range(settings.AXES_FAILURE_LIMIT):
        Client().post(
            LOGIN, {"username": "alice", "password": "wrong"}, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.7"
        )
    locked = Client().post(
        LOGIN, {"username": "alice", "password": PASSWORD}, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.7"
    )
    assert locked.status_code == 429
    # Alice from her own desk, through the same proxy, is not locked out by someone else's guessing.
    other = Client().post(
        LOGIN, {"username": "alice", "password": PASSWORD}, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="198.51.100.4"
    )
    assert other.status_code == 302
