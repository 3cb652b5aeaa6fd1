"""Unit cost and the cost explorer with the demo's year of billing; an admin's upload, rule and its effect.

The upload is imported by a real Celery worker process on the billing queue, as in production.
"""

import re
import uuid

import pytest

from apps.accounts.roles import Role
from tests.billing.test_unit_cost import MARCH_ITEMS, focus_file
from tests.factories import ServiceFactory, UserFactory
from tests.utils import start_worker, stop_worker

pytestmark = [pytest.mark.browser]

PASSWORD = "opsportal-demo"


def _wait_for_chart(page, selector: str) -> None:
    page.wait_for_selector(f"{selector} .main-svg")  # Plotly has drawn it


def test_cfo_reads_unit_cost_and_explores_cost_with_demo_data(demo, login, portal):
    page = login("cfo", PASSWORD)
    page.click(".sidebar >> text=Unit cost")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text() == "Unit cost of service"
    rows = page.locator("[data-testid=unit-cost-table] tbody tr[data-service]:not([data-service=unallocated])")
    assert rows.count() == 5
    for cell in page.locator("[data-testid=unit-cost]").all_inner_texts():
        assert re.fullmatch(r"\d[\d,]*\.\d{4}", cell.strip()), cell  # every service has a unit cost
    assert re.fullmatch(r"[\d.]+ %", page.locator("[data-testid=unallocated] .tile-value").inner_text().strip())
    _wait_for_chart(page, "[data-testid=trend-chart]")
    anomalies = page.locator("[data-testid=anomaly-table] tbody").inner_text()
    assert "Real-time promotions" in anomalies and "spike" in anomalies

    # Another service's trend, through htmx.
    page.select_option("#id_service", "smart-cart")
    page.wait_for_selector("text=Smart cart: cost, units and unit cost")
    _wait_for_chart(page, "[data-testid=trend-chart]")

    page.click(".sidebar >> text=Cost explorer")
    page.wait_for_load_state("networkidle")
    _wait_for_chart(page, "[data-testid=explorer-chart]")
    assert page.locator("[data-testid=explorer-table] tbody tr").count() >= 1
    assert "Price forecasting" in page.locator("[data-testid=explorer-table] thead").inner_text()
    page.select_option("#id_group_by", "environment")
    page.wait_for_selector("[data-testid=explorer-table] thead >> text=Production")
    _wait_for_chart(page, "[data-testid=explorer-chart]")
    assert "group_by=environment" in page.url


@pytest.fixture
def billing_worker():
    """A Celery worker on the billing queue, on the test database."""
    proc = start_worker("billing", f"billing-{uuid.uuid4().hex[:8]}")
    try:
        yield proc
    finally:
        stop_worker(proc)


def test_admin_uploads_a_file_watches_it_import_and_allocates_it_with_a_previewed_rule(
    login, portal, billing_worker, settings, tmp_path
):
    settings.UPLOAD_DIR = tmp_path / "uploads"
    UserFactory(username="admin", role=Role.ADMIN, password=PASSWORD)
    ServiceFactory(slug="alpha", name="Alpha", unit_name="1,000 predictions")
    export = focus_file(tmp_path, "march-2026.csv", MARCH_ITEMS)
    page = login("admin", PASSWORD)

    page.goto(f"{portal.url}/costs/sources/")
    page.click("text=Add a source")
    page.fill("#id_name", "Uploads")
    page.select_option("#id_format", "focus")
    page.click("[data-testid=source-form] button[type=submit]")
    page.wait_for_selector("h1 >> text=Uploads")

    page.click("text=Upload a file")
    page.set_input_files("#id_file", str(export))
    page.click("[data-testid=upload-form] button[type=submit]")
    page.wait_for_selector("[data-testid=import-status]")
    assert "/costs/imports/" in page.url
    try:
        page.wait_for_selector("[data-testid=import-status][data-status=succeeded]", timeout=90_000)
    except Exception:
        billing_worker.terminate()
        pytest.fail(f"the import did not finish; worker log:\n{billing_worker.communicate(timeout=20)[0]}")
    result = page.locator("[data-testid=import-status]").inner_text()
    assert "Imported 6 rows" in result and "500.00 USD" in result and "2026-03-01" in result

    page.goto(f"{portal.url}/costs/rules/new/")
    page.fill("#id_name", "Alpha by tag")
    page.select_option("#id_match", "tag")
    page.fill("#id_tag_key", "service")
    page.fill("#id_value", "alpha")
    page.select_option("#id_service", label="Alpha")
    page.click("[data-testid=preview-button]")
    page.wait_for_selector("[data-testid=preview-claims]")
    # Two tagged items and the GPU node tagged alpha: 100.10 + 49.90 + 50.00, all unallocated today.
    assert page.locator("[data-testid=preview-claims]").inner_text().startswith("3 line items")
    assert page.locator("[data-testid=preview-unallocated]").inner_text().startswith("200.00 USD (3 items)")
    page.click("[data-testid=save-button]")
    page.wait_for_selector("[data-rule='Alpha by tag']")
    # The worker re-allocates the stored cost; the rules page follows it until it is done.
    try:
        page.wait_for_selector("[data-testid=reallocation][data-status=succeeded]", timeout=90_000)
    except Exception:
        billing_worker.terminate()
        pytest.fail(f"the re-allocation did not finish; worker log:\n{billing_worker.communicate(timeout=20)[0]}")
    assert "after rule Alpha by tag added" in page.locator("[data-testid=reallocation-text]").inner_text()

    page.goto(f"{portal.url}/costs/?period=2026-03")
    alpha = page.locator("[data-testid=unit-cost-table] tr[data-service=alpha]").inner_text()
    assert "200.00" in alpha and "no units" in alpha
    assert page.locator("[data-testid=unallocated] .tile-value").inner_text().strip() == "60.0 %"  # 300 of 500
