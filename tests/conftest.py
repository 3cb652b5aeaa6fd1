import os

import pytest

from apps.accounts.roles import Role

from .factories import UserFactory


def pytest_collection_modifyitems(config, items):
    """Browser tests last: they share one demo database that a flushing (transactional) test would empty.

    Among them, those that build their own data (and flush it afterwards) come before those that read
    the demo, which is loaded once, when the first of them starts.
    """

    def order(item):
        is_browser = "tests/browser/" in item.nodeid.replace("\\", "/")
        return (is_browser, is_browser and "demo" in getattr(item, "fixturenames", ()))

    items.sort(key=order)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, and before it is dropped, the sessions still connected to it ended:
    the browser tests' live server threads and worker processes may keep one open, and PostgreSQL refuses
    to drop a database in use (the test run then ends with a warning and leaves the database behind)."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


ROLE_USERNAMES = {Role.EXECUTIVE: "exec", Role.PRODUCT_MANAGER: "pmuser", Role.ADMIN: "adminuser"}


def require_server(name: str, reason: str) -> None:
    """Skip a test whose real server is missing, except under CI, where it must run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{name} is required under CI: {reason}")
    pytest.skip(f"{name} not available: {reason}")


@pytest.fixture
def users(db):
    return {role: UserFactory(username=name, role=role) for role, name in ROLE_USERNAMES.items()}


@pytest.fixture
def role_client(client, users):
    """A function giving a test client logged in as the given role (None: anonymous)."""

    def make(role):
        from django.test import Client

        c = Client()
        if role is not None:
            c.force_login(users[role])
        return c

    return make


@pytest.fixture
def admin_user(users):
    return users[Role.ADMIN]


@pytest.fixture
def exec_client(role_client):
    return role_client(Role.EXECUTIVE)


@pytest.fixture
def admin_client_portal(role_client):
    return role_client(Role.ADMIN)
