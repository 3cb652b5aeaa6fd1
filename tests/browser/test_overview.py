"""An Executive reads the overview: every headline tile with the demo's figures, filters, export."""

import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser]

PASSWORD = "opsportal-demo"


def test_executive_reads_the_overview_filters_it_and_exports_it(demo, login, portal):
    page = login("cio", PASSWORD)
    tiles = page.locator("#kpi-tiles .tile")
    assert tiles.count() >= 7
    cloud = page.locator("[data-kpi=cloud_cost] .tile-value")
    assert re.search(r"\d", cloud.inner_text()), "the demo's billing gives this month a total cloud cost"
    everyone = cloud.get_attribute("data-value")

    # A service filter swaps only the tiles (htmx) and narrows the figure.
    page.select_option("#id_service", "smart-cart")
    page.wait_for_url(re.compile(r"service=smart-cart"))
    page.wait_for_function(
        "v => document.querySelector('[data-kpi=cloud_cost] .tile-value').dataset.value !== v", arg=everyone
    )
    assert float(cloud.get_attribute("data-value")) < float(everyone)
    assert page.locator("h1").inner_text() == "Overview"

    # Each tile opens its page; the export downloads the same tiles as CSV.
    with page.expect_download() as download:
        page.click("#kpi-export")
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.splitlines()[0].startswith("period,kpi,title,value")
    assert "cloud_cost" in csv_text
    page.click("[data-kpi=capacity_waste]")
    page.wait_for_load_state("networkidle")
    assert "/capacity/" in page.url
