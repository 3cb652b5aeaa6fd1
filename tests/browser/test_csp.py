"""The Content-Security-Policy holds in a real browser: every area's main page, as an admin, loads with no
console error and no CSP violation, and its charts are drawn (Plotly from a static file, fed by JSON data)."""

import pytest

from tests.browser.conftest import DEMO_PASSWORD

pytestmark = [pytest.mark.browser]

# Records every violation the browser reports, before any page script runs. Playwright injects it through
# the DevTools protocol, which the page's policy does not govern.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
    " at " + (e.sourceFile || document.location.pathname) + ":" + e.lineNumber);
});
"""

# (path, what the page shows when it is ready, how many charts it draws at least)
PAGES = [
    ("/", "#kpi-tiles .tile", 0),
    ("/costs/", "[data-testid=unit-cost-table]", 2),
    ("/costs/explorer/", "[data-testid=explorer-chart]", 1),
    ("/capacity/", "[data-testid=chart-heatmap]", 2),
    ("/models/", "[data-testid=chart-latency]", 1),
    ("/alerts/", "h1", 0),
    ("/alerts/models/", "[data-testid=health-table]", 0),
    ("/adoption/", "[data-figure=fig-funnel]", 3),
    ("/adoption/nps/", "[data-figure=fig-nps-dist]", 1),
    ("/functionality/", "[data-figure]", 3),
    ("/catalog/", "h1", 0),
    ("/settings/", "h1", 0),
    ("/accounts/me/", "h1", 0),
    ("/admin/", "#content", 0),
    ("/admin/axes/accessattempt/", "#content", 0),
    ("/admin/catalog/service/add/", "#content", 0),
]

ALL_CHARTS_DRAWN = """() => {
  const charts = document.querySelectorAll("[data-figure]");
  return Array.from(charts).every(el => el.querySelector(".plot-container .main-svg"));
}"""


class Problems:
    """Console errors, uncaught exceptions and failed requests of one browser page, as they happen."""

    def __init__(self, page, origin: str):
        self.items: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.items.append(f"uncaught: {exc}"))
        page.on(
            "response",
            lambda r: r.status >= 400 and r.url.startswith(origin) and self.items.append(f"{r.status} {r.url}"),
        )

    def _console(self, msg) -> None:
        # A failed load is reported with its URL by the response listener. The console repeats it without
        # the URL, and also for the browser's own /favicon.ico probe on admin pages, which are not the page's.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.items.append(f"console: {msg.text}")

    def take(self) -> list[str]:
        items, self.items = self.items, []
        return items


def _violations(page) -> list[str]:
    return page.evaluate("() => window.__cspViolations || []")


def _check(page, problems: Problems, where: str) -> None:
    assert _violations(page) == [], f"{where}: CSP violations"
    assert problems.take() == [], f"{where}: console errors or failed requests"


def test_every_area_loads_under_the_policy_with_its_charts_drawn(demo, page, portal):
    page.add_init_script(RECORD_VIOLATIONS)
    problems = Problems(page, portal.url)

    response = page.goto(f"{portal.url}/accounts/login/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-eval" not in policy
    _check(page, problems, "login page")
    page.fill("#id_username", "admin")
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")

    for path, ready, charts in PAGES:
        response = page.goto(f"{portal.url}{path}")
        assert response.status == 200, path
        page.wait_for_selector(ready, state="attached")
        page.wait_for_load_state("networkidle")
        page.wait_for_function(ALL_CHARTS_DRAWN)  # every chart on the page, however many
        drawn = page.locator("[data-figure] .plot-container .main-svg").count()
        assert drawn >= charts, f"{path}: {drawn} charts drawn, expected at least {charts}"
        _check(page, problems, path)


def test_htmx_swaps_redraw_charts_without_violations(demo, page, portal):
    page.add_init_script(RECORD_VIOLATIONS)
    problems = Problems(page, portal.url)
    page.goto(f"{portal.url}/accounts/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")

    page.goto(f"{portal.url}/costs/")
    page.wait_for_function(ALL_CHARTS_DRAWN)
    target = page.locator("#period option").nth(1).get_attribute("value")
    page.select_option("#period", target)
    page.wait_for_url(f"**period={target}**")
    page.wait_for_load_state("networkidle")
    page.wait_for_function(ALL_CHARTS_DRAWN)
    assert page.locator("[data-figure] .main-svg").count() >= 2
    _check(page, problems, "/costs/ after an htmx swap")


def test_the_api_docs_render_under_the_policy(demo, page, portal):
    page.add_init_script(RECORD_VIOLATIONS)
    problems = Problems(page, portal.url)
    page.goto(f"{portal.url}/accounts/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")

    response = page.goto(f"{portal.url}/api/docs/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # Swagger UI draws the operations from the schema: its start-up script ran and fetched /api/schema/.
    page.wait_for_selector(".swagger-ui .opblock-tag", state="attached")
    page.wait_for_load_state("networkidle")
    assert "opsportal API" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".swagger-ui .opblock").count() > 20
    _check(page, problems, "/api/docs/")


def test_a_violation_would_be_caught(demo, page, portal):
    """The recorder works: an inline script injected into a page is blocked and reported."""
    page.add_init_script(RECORD_VIOLATIONS)
    page.goto(f"{portal.url}/accounts/login/")
    page.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "window.__ran = 1";
                  document.body.appendChild(s); }"""
    )
    page.wait_for_function("() => window.__cspViolations.length > 0")
    assert page.evaluate("() => window.__ran") is None
    assert any(v.startswith("script-src") for v in _violations(page))
