"""Each demo role signs in through the real login form and sees what it should, and only that."""

import re

import pytest

pytestmark = [pytest.mark.browser]

PASSWORD = "opsportal-demo"
KPI_PAGES = ["Overview", "Unit cost", "Cost explorer", "Capacity", "Models", "Alerts", "Functionality", "Adoption"]


def _nav_labels(page) -> list[str]:
    return [t.strip() for t in page.locator(".sidebar nav a.nav-link").all_inner_texts()]


@pytest.mark.parametrize(
    ("username", "role_label", "sees_settings"),
    [("cfo", "Executive", False), ("pm", "Product manager", False), ("admin", "Admin", True)],
)
def test_role_sees_its_pages_and_cannot_reach_others(demo, login, portal, username, role_label, sees_settings):
    page = login(username, PASSWORD)
    assert page.url.rstrip("/") == portal.url
    assert page.locator("[data-testid=role]").inner_text() == role_label
    nav = _nav_labels(page)
    for label in KPI_PAGES:
        assert label in nav
    assert ("Settings" in nav) is sees_settings
    assert ("Admin site" in nav) is sees_settings
    assert page.locator(".tile").count() == 7

    # The KPI pages open from the navigation, with the demo's data.
    page.click(".sidebar >> text=Unit cost")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text() == "Unit cost of service"
    assert page.locator("[data-testid=unit-cost-table] tr[data-service]").count() > 1

    # The settings page: admins configure, everyone else is refused with a clear page, never a crash.
    response = page.goto(f"{portal.url}/settings/")
    if sees_settings:
        assert response.status == 200
        assert page.locator("h1").inner_text() == "Settings"
        assert "Worker heartbeat" in page.content()
    else:
        assert response.status == 403
        assert "do not have access" in page.locator("[data-testid=error-message]").inner_text()


def test_period_picker_updates_the_page_with_htmx(demo, login, portal):
    page = login("cfo", PASSWORD)
    page.goto(f"{portal.url}/capacity/")
    options = page.locator("#period option")
    target_value = options.nth(2).get_attribute("value")
    target_label = options.nth(2).inner_text()
    page.select_option("#period", target_value)
    page.wait_for_url(re.compile(rf"period={target_value}"))
    page.wait_for_function("label => document.querySelector('.page-period').innerText === label", arg=target_label)
    # The choice follows the user to the next page.
    page.click(".sidebar >> text=Adoption")
    page.wait_for_load_state("networkidle")
    assert page.locator(".page-period").inner_text() == target_label


def test_wrong_password_is_refused_with_a_message(demo, page, portal):
    page.goto(f"{portal.url}/accounts/login/")
    page.fill("#id_username", "cfo")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    assert "did not match" in page.locator(".msg-error").inner_text()


def test_anonymous_visitor_is_sent_to_login(page, portal):
    page.goto(f"{portal.url}/costs/")
    assert "/accounts/login/" in page.url
    assert page.locator("#id_username").is_visible()


def test_admin_reaches_the_admin_site_and_an_executive_does_not(demo, login, portal):
    page = login("admin", PASSWORD)
    page.goto(f"{portal.url}/admin/catalog/service/")
    assert "Select service to change" in page.content()
    page.context.clear_cookies()
    page = login("cio", PASSWORD)
    page.goto(f"{portal.url}/admin/catalog/service/")
    assert "/admin/login/" in page.url
    assert "not authorized" in page.content()
