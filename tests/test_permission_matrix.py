"""Every URL and API route x every role x anonymous, with the status each must get.

The routes are listed per app in tests/matrix/<app>.py. A new route that no module lists fails
`test_every_route_is_in_the_matrix`: decide who may reach it, then add it there. Admin-site routes
are covered as a group by `test_admin_site_is_for_admins_only`.
"""

import importlib
import pkgutil

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests import matrix
from tests.matrix import ADM, ANON, EXE, PM, ROLES

MODULES = [importlib.import_module(f"tests.matrix.{m.name}") for m in pkgutil.iter_modules(matrix.__path__)]
ROUTES = [route for module in MODULES for route in module.MATRIX]


def _route_names(patterns, namespace=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from _route_names(p.url_patterns, ns)
        elif isinstance(p, URLPattern):
            yield f"{namespace}{p.name}" if p.name else f"{namespace}<unnamed {p.pattern}>"


def test_every_route_is_in_the_matrix():
    listed = {route.name for route in ROUTES}
    routes = {name for name in _route_names(get_resolver().url_patterns) if not name.startswith("admin:")}
    assert routes - listed == set(), "routes missing from the permission matrix (tests/matrix/)"
    assert listed - routes == set(), "the matrix lists routes that no longer exist"


@pytest.fixture
def matrix_objects(users):
    for module in MODULES:
        if hasattr(module, "setup"):
            module.setup(users)


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r or "anonymous")
@pytest.mark.parametrize("route", ROUTES, ids=[r.id for r in ROUTES])
def test_route_answers_each_role_as_expected(role_client, matrix_objects, role, route):
    client = role_client(role)
    url = reverse(route.name, kwargs=route.kwargs() if route.kwargs else None)
    if route.before:
        route.before(role)
    send = getattr(client, route.method)
    if route.json:
        response = send(url, data=route.data, content_type="application/json")
    else:
        response = send(url, data=route.data) if route.method != "get" or route.data else send(url)
    assert response.status_code == route.expected[role], (
        f"{route.id} {url} as {role or 'anonymous'}: {response.status_code}, expected {route.expected[role]}"
    )
    if route.expected[role] == 302 and role is None and route.name != "accounts:logout":
        assert reverse("accounts:login") in response["Location"]


@pytest.mark.parametrize(
    ("role", "expected"),
    [(ANON, 302), (EXE, 302), (PM, 302), (ADM, 200)],
    ids=["anonymous", "executive", "product_manager", "admin"],
)
@pytest.mark.parametrize(
    "name",
    [
        "admin:index",
        "admin:catalog_service_changelist",
        "admin:accounts_user_changelist",
        "admin:django_celery_beat_periodictask_changelist",
    ],
)
def test_admin_site_is_for_admins_only(role_client, users, role, expected, name):
    response = role_client(role).get(reverse(name))
    assert response.status_code == expected
    if expected == 302:
        # Anonymous visitors get a login form; signed-in non-admins the admin site's refusal.
        assert response["Location"].startswith(("/accounts/login/", "/admin/login/"))
        if role is not None:
            assert response["Location"].startswith("/admin/login/")
