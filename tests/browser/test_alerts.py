"""The alert pages in a real browser: the rule form with its preview chart, the alert list and detail with
acknowledgement, and the model health page with thresholds drawn and a champion/challenger comparison."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.accounts.roles import Role
from apps.alerts.evaluation import floor_hour
from apps.alerts.models import Alert, AlertRule, AuditEntry
from apps.alerts.services import evaluation_cycle
from apps.telemetry.services import telemetry_push
from tests.alerts.factories import RuleFactory
from tests.factories import EnvironmentFactory, UserFactory
from tests.telemetry.factories import ModelVersionFactory

pytestmark = [pytest.mark.browser]
PASSWORD = "pw-for-tests"  # UserFactory's


@pytest.fixture
def setup():
    admin = UserFactory(username="ada", role=Role.ADMIN, first_name="Ada", last_name="Novak")
    owner = UserFactory(username="priya", role=Role.PRODUCT_MANAGER, first_name="Priya", last_name="Mehta")
    prod = EnvironmentFactory(slug="prod", name="Production", kind="prod")
    v1 = ModelVersionFactory(model__slug="ranker", model__name="Ranker", version="2.1.0", stage="production")
    v2 = ModelVersionFactory(model=v1.model, version="2.2.0", stage="staging")
    now = timezone.now()
    points = []
    for h in range(1, 30):
        start = floor_hour(now) - timedelta(hours=h)
        for version, base in (("2.1.0", 600 if h <= 3 else 120), ("2.2.0", 90)):
            for i in range(4):
                points.append(
                    {
                        "metric": "latency_ms",
                        "model": "ranker",
                        "version": version,
                        "environment": "prod",
                        "timestamp": (start + timedelta(minutes=15 * i)).isoformat(),
                        "value": base + 10 * i,
                    }
                )
            for metric, value in (("request_count", 1000), ("error_count", 4 if version == "2.1.0" else 20)):
                points.append(
                    {
                        "metric": metric,
                        "model": "ranker",
                        "version": version,
                        "environment": "prod",
                        "timestamp": start.isoformat(),
                        "value": value,
                    }
                )
    telemetry_push(points=points, now=now)
    RuleFactory(
        name="Ranker p95 latency",
        model=v1.model,
        environment=prod,
        threshold=Decimal("500"),
        consecutive_breaches=1,
        owner_user=owner,
        runbook="Roll back the last feature-store change.",
    )
    evaluation_cycle(at=now)
    return {"admin": admin, "owner": owner, "v1": v1, "v2": v2}


def test_rule_form_preview_alert_detail_and_model_health(setup, login, portal):
    page = login("ada", PASSWORD)

    # The rule form: a wrong threshold is explained; a right one previews on a chart with the threshold line.
    page.goto(f"{portal.url}/alerts/rules/new/")
    page.fill("#id_name", "Ranker p99 latency")
    page.select_option("#id_metric", "latency_p99")
    page.select_option("#id_model", label="Ranker")
    page.select_option("#id_environment", label="Production")
    page.fill("#id_threshold", "-3")
    page.fill("#id_consecutive_breaches", "2")
    page.select_option("#id_owner_user", label="Priya Mehta (priya)")
    page.click("[data-testid=preview-button]")
    page.wait_for_selector("[data-testid=preview-errors]")
    assert "Latency p99 cannot be negative" in page.inner_text("[data-testid=preview-errors]")

    page.fill("#id_threshold", "550")
    page.click("[data-testid=preview-button]")
    page.wait_for_selector("[data-testid=preview-chart] .main-svg")
    summary = page.inner_text("[data-testid=preview-summary]")
    assert "would have fired 1 time" in summary and "across 2 instances" in summary  # 2.1.0 and 2.2.0
    assert page.locator("[data-testid=preview-chart] .legendtext", has_text="threshold 550 ms").count() == 1
    assert int(page.inner_text("[data-testid=preview-fired]")) >= 1
    assert not AlertRule.objects.filter(name="Ranker p99 latency").exists()  # previewing saves nothing

    page.click("[data-testid=save-button]")
    page.wait_for_selector("[data-testid=rule-facts]")
    assert "Ranker p99 latency" in page.inner_text("h1")
    assert AuditEntry.objects.filter(target_type="rule", action="created", actor=setup["admin"]).exists()

    # The alert list and detail: the firing alert, its timeline, acknowledgement with a note.
    page.click(".alerts-subnav >> text=Alerts")
    row = page.locator("[data-testid=alert-table] tr[data-rule='Ranker p95 latency']")
    assert "Firing" in row.inner_text()
    row.locator("[data-testid=alert-link]").click()
    page.wait_for_selector("[data-testid=timeline]")
    assert [e.get_attribute("data-action") for e in page.locator("[data-testid=timeline] li").all()][:2] == [
        "pending",
        "firing",
    ]
    assert "Roll back the last feature-store change." in page.content()
    page.fill("#id_note", "Rolling back the feature store change")
    page.click("[data-testid=ack-button]")
    page.wait_for_selector(".msg-success")
    assert "acknowledged" in page.inner_text("[data-testid=alert-state]")
    assert "Rolling back the feature store change" in page.inner_text("[data-testid=alert-ack]")
    assert page.locator("[data-testid=timeline] li[data-action=acknowledged]").count() == 1
    assert Alert.objects.get(rule__name="Ranker p95 latency").acknowledged_by == setup["admin"]

    # Model health: 2.1.0 breaches (red), 2.2.0 is watched and fine; charts carry the threshold.
    page.click("[data-testid=model-health-link]")
    page.wait_for_selector("[data-testid=health-table]")
    statuses = {
        r.get_attribute("data-row"): r.get_attribute("data-status")
        for r in page.locator("[data-testid=health-table] tbody tr").all()
    }
    assert statuses["ranker|2.1.0|prod"] == "red" and statuses["ranker|2.2.0|prod"] == "green"
    page.locator("tr[data-row='ranker|2.1.0|prod'] [data-testid=row-charts]").click()
    page.wait_for_selector("[data-testid=chart-latency] .main-svg")
    legend = " ".join(page.locator("[data-testid=chart-latency] .legendtext").all_text_contents())
    assert "Ranker p95 latency (500 ms)" in legend
    page.wait_for_selector("[data-testid=chart-errors] .main-svg")

    page.select_option("#id_champion", label="Ranker 2.1.0 (production)")
    page.select_option("#id_challenger", label="Ranker 2.2.0 (staging)")
    page.click("[data-testid=compare-button]")
    page.wait_for_selector("[data-testid=chart-compare] .main-svg")
    table = page.inner_text("[data-testid=comparison-table]")
    assert "2.1.0 (champion)" in table and "2.2.0 (challenger)" in table
    assert "Error rate" in table and "0.40 %" in table and "2.00 %" in table


def test_an_executive_reads_alerts_but_cannot_change_rules(setup, page, portal):
    UserFactory(username="carla", role=Role.EXECUTIVE)
    page.goto(f"{portal.url}/accounts/login/")
    page.fill("#id_username", "carla")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    page.goto(f"{portal.url}/alerts/rules/")
    assert page.locator("[data-testid=add-rule]").count() == 0
    response = page.goto(f"{portal.url}/alerts/rules/new/")
    assert response.status == 403
    page.goto(f"{portal.url}/alerts/")
    assert page.locator("[data-testid=alert-table] tr[data-rule='Ranker p95 latency']").count() == 1
