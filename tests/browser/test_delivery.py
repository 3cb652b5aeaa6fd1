"""An Executive reads the Functionality page in a real browser: cost per feature, its drivers, DORA tiers."""

import re

import pytest
from django.utils import timezone

from apps.core.periods import month_of

pytestmark = [pytest.mark.browser]

PASSWORD = "opsportal-demo"
FIGURES = ["fig-by-team", "fig-drivers", "fig-dora-0", "fig-dora-1", "fig-dora-2", "fig-dora-3"]


def test_an_executive_reads_cost_per_feature_and_the_dora_metrics(demo, login, portal):
    page = login("cfo", PASSWORD)
    page.click(".sidebar >> text=Functionality")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text() == "Cost of creating functionality"

    last_month = month_of(timezone.localdate()).previous()  # a whole month of the demo year
    page.select_option("#period", last_month.key)
    page.wait_for_url(re.compile(rf"period={last_month.key}"))
    page.wait_for_function("label => document.querySelector('.page-period').innerText === label", arg=last_month.label)

    assert re.fullmatch(r"[\d,]+\.\d\d USD per feature", page.locator("[data-testid=cost-per-feature]").inner_text())
    shipped = int(page.locator("[data-testid=features-shipped]").inner_text())
    assert shipped > 10
    assert page.locator("[data-testid=features-table] tbody tr").count() == min(shipped, 50)
    environments = page.locator("[data-testid=environments]").inner_text()
    if environments == "missing":  # no billing data for the month: the page says so
        assert "Environment cost is missing" in page.locator("[data-testid=environments-missing]").inner_text()
    else:
        assert re.fullmatch(r"[\d,]+\.\d\d USD", environments)

    tiers = page.locator("[data-testid=dora-tiles] [data-testid=tier]").all_inner_texts()
    assert len(tiers) == 4 and set(tiers) <= {"Elite", "High", "Medium", "Low"}
    assert "source year" in page.locator("[data-testid=benchmark]").inner_text()
    for figure in FIGURES:  # Plotly drew every chart
        page.wait_for_selector(f"[data-figure={figure}] .main-svg")
    assert page.locator("text=Import CSV").count() == 0  # executives change nothing

    # Cut by team: the fragment is swapped in place and every feature listed is that team's.
    page.select_option("#id_team", "vision")
    page.wait_for_url(re.compile(r"team=vision"))
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=features-table] tbody tr td:nth-child(3)')]"
        ".every(td => td.innerText === 'Store Vision')"
    )
    assert page.locator("[data-testid=features-table] tbody tr td:nth-child(3)").count() > 0
    page.wait_for_selector("[data-figure=fig-by-team] .main-svg")

    # Each DORA figure opens the deployments and incidents behind it.
    page.click("[data-metric=change_failure_rate]")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text() == "Deployments and incidents"
    services = page.locator("[data-testid=deployments-table] tbody tr td:nth-child(2)").all_inner_texts()
    assert services and set(services) == {"Shelf vision"}
