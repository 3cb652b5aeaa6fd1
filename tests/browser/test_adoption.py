"""The adoption pages and the NPS survey in a real browser, on the demo data."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

pytestmark = [pytest.mark.browser]

PASSWORD = "opsportal-demo"


def _settle(page):
    page.wait_for_load_state("networkidle")


def test_a_product_manager_reads_and_steers_adoption(demo, login, portal):
    page = login("pm", PASSWORD)
    page.goto(f"{portal.url}/adoption/")
    _settle(page)
    assert page.locator("h1").inner_text() == "Adoption"
    assert page.locator(".adoption-tile").count() == 12
    # Plotly drew the funnel, the monthly MAU chart and the daily chart.
    page.wait_for_selector("[data-figure=fig-funnel] .main-svg")
    assert page.locator(".chart .main-svg").count() >= 3
    # The demo set this month's targets for pm's products; with all products in view none apply.
    all_mau = page.locator("[data-kpi=mau] .tile-value").inner_text()

    # Filter to one product: htmx swaps the body and the URL follows.
    page.select_option("#id_product", "price-forecasting")
    page.wait_for_url(re.compile(r"product=price-forecasting"))
    page.wait_for_function("old => document.querySelector('[data-kpi=mau] .tile-value').innerText !== old", arg=all_mau)
    assert page.locator("[data-kpi=mau] [data-rag]").count() == 1, "the MAU target of Price Forecasting shows its RAG"
    assert "Target" in page.locator("[data-testid=target-mau]").inner_text()
    funnel_rows = page.locator("[data-testid=funnel] tbody tr")
    assert funnel_rows.count() == 4
    assert int(funnel_rows.nth(0).locator("td").nth(1).inner_text()) > 0

    # Retention, NPS, stores and regions: each tab keeps the filter.
    page.click(".adoption-tabs >> text=Retention")
    _settle(page)
    assert "product=price-forecasting" in page.url
    assert page.locator(".retention-table tbody tr").count() == 12

    page.click(".adoption-tabs >> text=NPS")
    _settle(page)
    assert page.locator("[data-testid=nps-campaigns] tbody tr").count() >= 1
    page.wait_for_selector("[data-figure=fig-nps-dist] .main-svg")

    page.click(".adoption-tabs >> text=Stores & regions")
    _settle(page)
    page.click(".seg >> text=Regions")
    page.wait_for_url(re.compile(r"by=region"))
    page.click("[data-testid=locations-table] th a[data-sort=trial_starts]")
    page.wait_for_url(re.compile(r"sort=-trial_starts"))
    cells = page.locator("[data-testid=locations-table] tbody tr td:nth-child(6)").all_inner_texts()
    values = [int(v.replace(",", "")) for v in cells]
    assert values == sorted(values, reverse=True) and len(values) >= 5

    # Set a target for next month on an owned product.
    page.click(".adoption-tabs >> text=Targets")
    _settle(page)
    form = page.locator("[data-testid=target-form]")
    form.locator("#id_kpi").select_option("trainings")
    form.locator("#id_product").select_option(label="Price Forecasting")
    next_month = (timezone.localdate().replace(day=28) + timedelta(days=5)).replace(day=1)
    form.locator("#id_month").select_option(next_month.isoformat())
    form.locator("#id_value").fill("75")
    form.locator("button[type=submit]").click()
    _settle(page)
    assert "Target saved: Training completions" in page.locator(".messages").inner_text()
    assert page.locator("[data-testid=targets-table] tr", has_text="Training completions").count() >= 1

    # An executive reads the same pages but is offered no way to change targets or import data.
    page.context.clear_cookies()
    page = login("cfo", PASSWORD)
    page.goto(f"{portal.url}/adoption/targets/")
    assert page.locator("[data-testid=targets-table]").is_visible()
    assert page.locator("[data-testid=target-form]").count() == 0
    assert page.locator(".adoption-tabs >> text=Import CSV").count() == 0


def test_an_employee_answers_the_nps_survey_once(demo, login, portal):
    from apps.adoption.models import NpsCampaign, NpsResponse

    today = timezone.localdate()
    campaign = NpsCampaign.objects.filter(product__slug="smart-cart", opens_on__lte=today, closes_on__gte=today).get()

    page = login("cio", PASSWORD)
    page.goto(f"{portal.url}/adoption/survey/{campaign.slug}/")
    assert "How likely are you to recommend Smart Cart to a colleague?" in page.locator("h1").inner_text()
    page.check("input[name=score][value='9']")
    page.fill("#id_comment", "Checkout queues are shorter.")
    page.click("[data-testid=survey] button[type=submit]")
    _settle(page)
    assert "Thank you" in page.locator(".messages").inner_text()
    assert "You answered 9" in page.locator("[data-testid=survey-answered]").inner_text()
    assert page.locator("input[name=score]").count() == 0

    page.reload()
    assert "You answered 9" in page.locator("[data-testid=survey-answered]").inner_text()
    response = NpsResponse.objects.get(campaign=campaign, respondent="cio")
    assert (response.score, response.comment, response.source) == (9, "Checkout queues are shorter.", "survey")

    # The answer counts on the NPS page straight away.
    page.goto(f"{portal.url}/adoption/nps/?product=smart-cart")
    assert "Checkout queues are shorter." in page.locator("[data-testid=nps-comments]").inner_text()
