"""Browser tests drive Debian's chromium (/usr/bin/chromium) through Playwright's Python API.

Playwright never downloads a browser here: it is pointed at the system chromium. Without chromium the
tests skip, saying so, except under CI, where they must run.

The demo organisation is loaded once per test session (``demo``) and served by one live server
(``portal``); browser tests run after every other test (tests/conftest.py orders them), so no
flushing test wipes the demo between them. They share that data: a test that changes something
must not break another.
"""

import os
import shutil

import pytest

from tests.conftest import require_server

CHROMIUM = os.environ.get("OPSPORTAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests make there are
# still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        require_server("chromium", f"{CHROMIUM} is missing; install it with `apt-get install chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _assert_test_database() -> None:
    """Browser tests write and flush the database directly: refuse anything but a test database."""
    from django.db import connection

    name = str(connection.settings_dict["NAME"]).rsplit("/", 1)[-1]
    assert name.startswith(("test_", "test-")), (
        f"browser tests refuse to run on {name!r}: not a test database. pytest-django creates the test database "
        "only when a collected test is marked django_db: run the browser tests with the suite (pytest tests/), "
        "or with any database test, e.g. pytest tests/core/test_load_demo.py tests/browser"
    )


@pytest.fixture(scope="session")
def portal(django_db_setup, django_db_blocker):
    """A live server on the test database for the whole session (like pytest-django's live_server,
    without flushing the database after each test)."""
    from pytest_django.live_server_helper import LiveServer

    with django_db_blocker.unblock():
        _assert_test_database()
        server = LiveServer("localhost")
        server._live_server_modified_settings.enable()
    yield server
    server._live_server_modified_settings.disable()
    server.stop()


@pytest.fixture(autouse=True)
def _browser_db_access(request, django_db_setup, django_db_blocker):
    """Browser tests and the server thread read and write the committed test database directly.

    A test that does not use the demo builds its own data: the database is emptied after it, so the
    demo tests (which run later) start from the demo alone.
    """
    with django_db_blocker.unblock():
        _assert_test_database()
        yield
        if "demo" not in request.fixturenames:
            from django.core.management import call_command

            call_command("flush", "--noinput", verbosity=0)


@pytest.fixture
def login(page, portal):
    def do(username: str, password: str):
        page.goto(f"{portal.url}/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        return page

    return do


DEMO_PASSWORD = "opsportal-demo"


@pytest.fixture(scope="session")
def demo(django_db_setup, django_db_blocker):
    """The demo organisation and its data, loaded once through the same paths `make run` uses."""
    from django.core.management import call_command

    with django_db_blocker.unblock():
        _assert_test_database()
        call_command("load_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
