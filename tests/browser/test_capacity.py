"""The capacity and model telemetry pages with the demo data, in a real browser: charts drawn, htmx filters,
the pool page with its forecast band, exhaustion and backtest."""

import pytest

from tests.browser.conftest import DEMO_PASSWORD

pytestmark = [pytest.mark.browser]


def _drawn(page, testid: str) -> None:
    """Wait until Plotly has drawn the chart (it adds its SVG inside the element)."""
    page.wait_for_selector(f"[data-testid={testid}] .main-svg", state="attached")


def test_capacity_and_model_pages_render_the_demo_telemetry(demo, login, portal):
    page = login("cfo", DEMO_PASSWORD)
    page.click(".sidebar >> text=Capacity")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text() == "Capacity and waste"
    waste = page.locator("[data-testid=tile-waste] .tile-value").inner_text()
    assert waste.endswith("USD") and waste[0].isdigit()
    _drawn(page, "chart-heatmap")
    _drawn(page, "chart-waste")
    pools = page.locator("[data-testid=pool-table]").inner_text()
    assert "GPU fleet A10G (prod)" in pools and "Data centre VMware cluster" in pools
    assert "GPU fleet A10G (prod)" in page.locator("[data-testid=exhaustion-table]").inner_text()
    assert "Data centre VMware cluster" in page.locator("[data-testid=savings-table]").inner_text()
    assert "Run forecasts now" not in page.content()  # executives read, admins run

    # The resource filter swaps the results in place (htmx) and keeps the choice in the URL.
    page.select_option("#id_resource_type", "gpu")
    page.wait_for_url("**resource_type=gpu**")
    page.wait_for_function("() => !document.querySelector('[data-testid=pool-table]').innerText.includes('VMware')")
    _drawn(page, "chart-heatmap")
    assert "AKS vision GPU T4" in page.locator("[data-testid=pool-table]").inner_text()

    # The GPU fleet's page: provisioned vs used with the forecast band, the exhaustion point and the backtest.
    page.click("[data-testid=pool-table] >> text=GPU fleet A10G (prod)")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text() == "GPU fleet A10G (prod)"
    _drawn(page, "chart-forecast")
    _drawn(page, "chart-waste-time")
    legend = page.locator("[data-testid=chart-forecast] .legend").text_content()
    assert "Forecast" in legend and "Exhaustion in" in legend
    backtest = page.locator("[data-testid=backtest]").inner_text()
    assert "days to exhaustion" in backtest and "backtest MASE" in backtest and "inside the 80 % interval" in backtest

    # Model telemetry: latency percentiles, error rate and throughput, filtered to one model with htmx.
    page.click(".sidebar >> text=Models")
    page.wait_for_load_state("networkidle")
    _drawn(page, "chart-latency")
    _drawn(page, "chart-errors")
    _drawn(page, "chart-throughput")
    page.select_option("#id_model", "promo-ranker")
    page.wait_for_url("**model=promo-ranker**")
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=workload-table]').innerText.includes('Cart item recogniser')"
    )
    table = page.locator("[data-testid=workload-table]").inner_text()
    assert "2.1.0" in table and "2.2.0" in table
    _drawn(page, "chart-latency")
    assert "p99" in page.locator("[data-testid=chart-latency] .legend").text_content()

    # An admin starts forecast runs from the capacity page (one demo load serves both roles).
    page.context.clear_cookies()
    page = login("admin", DEMO_PASSWORD)
    page.goto(f"{portal.url}/capacity/")
    before = page.locator("[data-testid=forecast-run]").count()
    page.click("text=Run forecasts now")
    page.wait_for_load_state("networkidle")
    assert "Forecast runs queued at daily grain" in page.locator(".msg-success").inner_text()
    assert page.locator("[data-testid=forecast-run]").count() == before + 2
