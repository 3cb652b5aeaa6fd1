"""Every URL and API route x every role x anonymous, with the status each must get.

A new route that is not listed here fails `test_every_route_is_in_the_matrix`: decide who may reach
it, then add it. Admin-site routes are covered as a group by the admin tests at the bottom.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from apps.accounts.models import ApiToken
from apps.accounts.roles import Role
from apps.catalog.models import CapacityPool, Environment, Location, MLModel, ModelVersion, Product, Service, Team

from .factories import EnvironmentFactory, ProductFactory, ServiceFactory

ANON = None
EXE, PM, ADM = Role.EXECUTIVE, Role.PRODUCT_MANAGER, Role.ADMIN
ROLES = [ANON, EXE, PM, ADM]

PAGE = {ANON: 302, EXE: 200, PM: 200, ADM: 200}  # every role reads; anonymous goes to the login form
ADMIN_PAGE = {ANON: 302, EXE: 403, PM: 403, ADM: 200}
API_READ = {ANON: 401, EXE: 200, PM: 200, ADM: 200}
API_WRITE_ADMIN = {ANON: 401, EXE: 403, PM: 403, ADM: 400}  # 400: allowed, then the empty body is refused
API_UPDATE_ADMIN = {ANON: 401, EXE: 403, PM: 403, ADM: 200}
API_DELETE_ADMIN = {ANON: 401, EXE: 403, PM: 403, ADM: 204}

CATALOG_ROUTES = {
    # basename: (lookup kwarg, function giving the lookup value)
    "team": ("slug", lambda: Team.objects.get(slug="matrix-team").slug),
    "environment": ("slug", lambda: Environment.objects.get(slug="matrix-env").slug),
    "location": ("code", lambda: Location.objects.get(code="matrix-loc").code),
    "service": ("slug", lambda: Service.objects.get(slug="matrix-service").slug),
    "capacitypool": ("slug", lambda: CapacityPool.objects.get(slug="matrix-pool").slug),
    "mlmodel": ("slug", lambda: MLModel.objects.get(slug="matrix-model").slug),
    "modelversion": ("pk", lambda: ModelVersion.objects.get(version="9.9.9").pk),
    "product": ("slug", lambda: Product.objects.get(slug="matrix-product").slug),
}

# (url name, method, kwargs factory or None, expected status by role)
MATRIX: list[tuple[str, str, object, dict]] = [
    ("healthz", "get", None, {ANON: 200, EXE: 200, PM: 200, ADM: 200}),
    ("kpis:overview", "get", None, PAGE),
    ("billing:unit-cost", "get", None, PAGE),
    ("billing:explorer", "get", None, PAGE),
    ("capacity:overview", "get", None, PAGE),
    ("telemetry:models", "get", None, PAGE),
    ("alerts:list", "get", None, PAGE),
    ("delivery:overview", "get", None, PAGE),
    ("adoption:overview", "get", None, PAGE),
    ("catalog:overview", "get", None, PAGE),
    ("core:settings", "get", None, ADMIN_PAGE),
    ("accounts:login", "get", None, {ANON: 200, EXE: 302, PM: 302, ADM: 302}),
    ("accounts:logout", "post", None, {ANON: 302, EXE: 302, PM: 302, ADM: 302}),
    ("accounts:account", "get", None, PAGE),
    ("accounts:token-create", "post", None, {ANON: 302, EXE: 200, PM: 200, ADM: 200}),  # 200: form errors shown
    (
        "accounts:token-revoke",
        "post",
        lambda: {"pk": ApiToken.objects.get(name="matrix-token").pk},
        {ANON: 302, EXE: 404, PM: 404, ADM: 302},
    ),  # only the owner (the admin here) finds the token
    ("accounts:digest", "post", None, {ANON: 302, EXE: 302, PM: 302, ADM: 302}),
    ("api-schema", "get", None, API_READ),
    ("api-docs", "get", None, PAGE),
    ("api-me", "get", None, API_READ),
    ("api-token-list", "get", None, API_READ),
    ("api-token-list", "post", None, {ANON: 401, EXE: 400, PM: 400, ADM: 400}),  # everyone: own tokens
    (
        "api-token-detail",
        "delete",
        lambda: {"pk": ApiToken.objects.get(name="matrix-token").pk},
        {ANON: 401, EXE: 404, PM: 404, ADM: 204},
    ),
]
for _basename, (_kwarg, _value) in CATALOG_ROUTES.items():
    _kwargs = (lambda k, v: lambda: {k: v()})(_kwarg, _value)
    MATRIX += [
        (f"{_basename}-list", "get", None, API_READ),
        (f"{_basename}-list", "post", None, API_WRITE_ADMIN),
        (f"{_basename}-detail", "get", _kwargs, API_READ),
        (f"{_basename}-detail", "patch", _kwargs, API_UPDATE_ADMIN),
        (f"{_basename}-detail", "delete", _kwargs, API_DELETE_ADMIN),
    ]


def _route_names(patterns, namespace=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from _route_names(p.url_patterns, ns)
        elif isinstance(p, URLPattern):
            yield f"{namespace}{p.name}" if p.name else f"{namespace}<unnamed {p.pattern}>"


def test_every_route_is_in_the_matrix():
    listed = {name for name, *_ in MATRIX}
    routes = {name for name in _route_names(get_resolver().url_patterns) if not name.startswith("admin:")}
    assert routes - listed == set(), "routes missing from the permission matrix"
    assert listed - routes == set(), "matrix lists routes that no longer exist"


@pytest.fixture
def catalog_objects(users):
    env = EnvironmentFactory(slug="matrix-env", name="Matrix env")
    service = ServiceFactory(slug="matrix-service", team__slug="matrix-team")
    Location.objects.create(code="matrix-loc", name="Matrix location", kind=Location.Kind.STORE)
    CapacityPool.objects.create(slug="matrix-pool", name="Matrix pool", resource_type="cpu", environment=env)
    model = MLModel.objects.create(
        slug="matrix-model", name="Matrix model", task="vision", service=service, team=service.team
    )
    ModelVersion.objects.create(model=model, version="9.9.9")
    ProductFactory(slug="matrix-product")
    ApiToken.objects.create(user=users[ADM], name="matrix-token", prefix="matrixpx", key_hash="0" * 64)


def _catalog_delete_safe(name: str) -> None:
    # Deleting a row that others refer to is refused (PROTECT); remove the dependents first so the
    # matrix measures permissions, not referential integrity.
    if name in {"team-detail", "service-detail"}:
        MLModel.objects.all().delete()
    if name in {"environment-detail", "location-detail"}:
        CapacityPool.objects.all().delete()
    if name == "team-detail":
        Service.objects.all().delete()


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r or "anonymous")
@pytest.mark.parametrize(
    ("name", "method", "kwargs", "expected"), MATRIX, ids=[f"{m[1].upper()} {m[0]}" for m in MATRIX]
)
def test_route_answers_each_role_as_expected(role_client, catalog_objects, role, name, method, kwargs, expected):
    client = role_client(role)
    url = reverse(name, kwargs=kwargs() if kwargs else None)
    if method == "delete" and role == ADM:
        _catalog_delete_safe(name)
    if method == "patch":
        response = client.patch(url, data={}, content_type="application/json")
    elif method == "post" and name.startswith(("api", *CATALOG_ROUTES)):
        response = client.post(url, data={}, content_type="application/json")
    else:
        response = getattr(client, method)(url)
    assert response.status_code == expected[role], (
        f"{method.upper()} {url} as {role or 'anonymous'}: {response.status_code}, expected {expected[role]}"
    )
    if expected[role] == 302 and role is None and name != "accounts:logout":
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
