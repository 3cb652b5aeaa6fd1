"""Alert list and detail, acknowledgement and assignment, the rule preview, model health and the model SLA KPI."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.accounts.roles import Role
from apps.alerts.evaluation import floor_hour
from apps.alerts.kpis import model_sla
from apps.alerts.models import Alert, AuditEntry
from apps.alerts.preview import rule_preview
from apps.alerts.services import evaluation_cycle
from apps.core.periods import Period
from apps.kpis.registry import KpiFilters
from tests.factories import TeamFactory, UserFactory
from tests.telemetry.factories import ModelVersionFactory

from .conftest import hour, latency
from .factories import RuleFactory

pytestmark = pytest.mark.django_db
HIGH = [600, 610, 620, 630]
LOW = [100, 110, 120, 130]


@pytest.fixture
def firing(catalog, users):
    owner = users[Role.PRODUCT_MANAGER]
    rule = RuleFactory(
        name="Ranker p95",
        model=catalog.model,
        consecutive_breaches=1,
        owner_user=owner,
        runbook="Check the feature store latency first.",
    )
    latency(hour(0), HIGH)
    evaluation_cycle(at=hour(1))
    return Alert.objects.get(rule=rule)


def test_alert_list_and_detail_show_state_value_owner_and_timeline(firing, role_client):
    client = role_client(Role.EXECUTIVE)
    page = client.get(reverse("alerts:list")).content.decode()
    assert 'data-rule="Ranker p95"' in page and "628 ms" in page and 'data-state="firing"' in page
    detail = client.get(reverse("alerts:detail", args=[firing.pk])).content.decode()
    assert "model=ranker · version=2.1.0 · environment=prod" in detail
    assert "Check the feature store latency first." in detail
    assert 'data-action="pending"' in detail and 'data-action="firing"' in detail
    assert "ack-form" not in detail  # executives read, they do not act
    resolved = client.get(reverse("alerts:list") + "?state=resolved").content.decode()
    assert 'data-rule="Ranker p95"' not in resolved and "No resolved alerts" in resolved


def test_the_owner_acknowledges_with_a_note_others_are_refused(firing, role_client, users):
    other_pm = UserFactory(username="other-pm", role=Role.PRODUCT_MANAGER)
    from django.test import Client

    stranger = Client()
    stranger.force_login(other_pm)
    url = reverse("alerts:acknowledge", args=[firing.pk])
    assert stranger.post(url, {"note": "mine?"}).status_code == 403
    assert role_client(Role.EXECUTIVE).post(url, {"note": "x"}).status_code == 403
    assert role_client(Role.PRODUCT_MANAGER).post(url, {"note": "Rolling back the feature flag"}).status_code == 302
    firing.refresh_from_db()
    assert firing.acknowledged_by == users[Role.PRODUCT_MANAGER] and firing.ack_note == "Rolling back the feature flag"
    entry = AuditEntry.objects.get(alert=firing, action="acknowledged")
    assert entry.actor == users[Role.PRODUCT_MANAGER] and entry.note == "Rolling back the feature flag"
    # Twice is refused with a clear message (through the API: 409).
    again = role_client(Role.ADMIN).post(
        f"/api/v1/alerts/{firing.pk}/acknowledge/", {}, content_type="application/json"
    )
    assert again.status_code == 409 and "already acknowledged by pmuser" in again.json()["detail"]


def test_assignment_moves_the_alert_to_another_owner_and_is_audited(firing, role_client, users):
    team = TeamFactory(slug="ml-platform", name="ML Platform")
    admin = role_client(Role.ADMIN)
    response = admin.post(
        f"/api/v1/alerts/{firing.pk}/assign/",
        {"team": "ml-platform", "note": "infra issue"},
        content_type="application/json",
    )
    assert response.status_code == 200 and response.json()["owner_team"] == "ml-platform"
    firing.refresh_from_db()
    assert (firing.owner_user, firing.owner_team) == (None, team)
    entry = AuditEntry.objects.get(alert=firing, action="assigned")
    assert entry.before == {"owner_user": "pmuser", "owner_team": None}
    assert entry.after == {"owner_user": None, "owner_team": "ml-platform"}
    # The former owner (a PM) no longer owns it, so may no longer act on it.
    assert (
        role_client(Role.PRODUCT_MANAGER)
        .post(reverse("alerts:assign", args=[firing.pk]), {"user": users[Role.PRODUCT_MANAGER].pk})
        .status_code
        == 403
    )
    bad = admin.post(reverse("alerts:assign", args=[firing.pk]), {"note": "nobody"})
    assert "Choose a user or a team" in bad.content.decode()


def test_preview_replays_the_rule_over_history(catalog):
    # Hour 0 breaches, hour 1 is low: live, the rule would have fired 3 evaluations (minutes) into hour 0 and
    # resolved at the start of hour 1, when the window's weighted p95 is (628.5 * 4 + 128.5 * 4) / 8 = 378.5.
    latency(hour(0), HIGH)
    latency(hour(1), LOW)
    rule = RuleFactory.build(model=catalog.model, environment=catalog.prod, consecutive_breaches=3)
    preview = rule_preview(rule, days=7, end=hour(3))
    assert preview.interval_seconds == 60  # the default evaluation schedule
    [episode] = preview.episodes
    assert episode.labels == {"model": "ranker", "version": "2.1.0", "environment": "prod"}
    assert (episode.pending_at, episode.fired_at, episode.resolved_at) == (
        hour(0),
        hour(0) + timedelta(minutes=2),
        hour(1),
    )
    points = dict(preview.instances[0].points)
    assert points[hour(0)] == pytest.approx(628.5) and points[hour(1)] == pytest.approx(378.5)
    assert points[hour(2)] == pytest.approx(128.5) and points[hour(3)] is None
    assert preview.firing_hours == pytest.approx(round(58 / 60, 1))


def test_preview_through_the_rule_form_draws_the_threshold(catalog, role_client):
    latency(hour(0), HIGH)
    owner = UserFactory(username="preview-owner", role=Role.PRODUCT_MANAGER)
    rule = RuleFactory(model=catalog.model, consecutive_breaches=1, threshold=Decimal("450"))
    data = {
        "rule_id": rule.pk,
        "name": rule.name,
        "metric": "latency_p95",
        "model": catalog.model.pk,
        "comparison": "gt",
        "threshold": "450",
        "window_minutes": 60,
        "consecutive_breaches": 1,
        "no_data": "keep",
        "severity": "warning",
        "owner_user": owner.pk,
        "group_interval_minutes": 5,
        "repeat_interval_minutes": 240,
        "drift_method": "psi",
        "drift_reference": "previous",
        "drift_reference_days": 7,
        "preview_days": 30,
        "action": "preview",
    }
    response = role_client(Role.ADMIN).post(reverse("alerts:rule-preview"), data, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    preview = response.context["preview"]
    assert preview.days == 30
    figure = response.context["preview_fig"]
    assert any(t["name"] == "threshold 450 ms" and t["y"] == [450.0, 450.0] for t in figure["data"])
    assert 'data-testid="preview-chart"' in html
    # Nothing was saved or audited by previewing.
    rule.refresh_from_db()
    assert rule.consecutive_breaches == 1 and not AuditEntry.objects.exists()
    bad = role_client(Role.ADMIN).post(reverse("alerts:rule-preview"), {**data, "threshold": "-5"})
    assert "Fix the rule first" in bad.content.decode()
    assert role_client(Role.PRODUCT_MANAGER).post(reverse("alerts:rule-preview"), data).status_code == 403


def test_model_health_statuses_and_the_sla_kpi(catalog, role_client):
    now = timezone.now()
    base = floor_hour(now) - timedelta(hours=2)
    # v1 (production) breaches and fires; v2 (staging) is watched and healthy; v3 has no rule.
    v3 = ModelVersionFactory(model__slug="other", model__name="Other", version="1.0", stage="production")
    latency(base, HIGH)
    latency(base, LOW, version="2.2.0")
    latency(base, LOW, model="other", version="1.0")
    RuleFactory(name="Ranker p95", model=catalog.model, environment=catalog.prod, consecutive_breaches=1)
    evaluation_cycle(at=base + timedelta(hours=1, minutes=5))

    response = role_client(Role.EXECUTIVE).get(reverse("alerts:model-health"))
    rows = {
        (r.model.slug, r.version.version if r.version else None, r.environment.slug if r.environment else None): r
        for r in response.context["rows"]
    }
    assert rows[("ranker", "2.1.0", "prod")].status == "red"
    assert rows[("ranker", "2.2.0", "prod")].status == "green"
    assert rows[("other", "1.0", "prod")].status == "grey"
    html = response.content.decode()
    assert "Breaching SLA" in html and "Meeting SLA" in html and "No SLA rule" in html

    # The KPI counts production versions watched by a rule (v1 only: v2 is staging, v3 has no rule): 0 of 1 met.
    period = Period("month", now.date().replace(day=1), (now.date().replace(day=1) + timedelta(days=32)).replace(day=1))
    kpi = model_sla(period, KpiFilters())
    assert (kpi.value, kpi.n) == (Decimal("0.0"), 1)
    assert "1 production version has no SLA rule: Other 1.0" in kpi.note
    assert response.context["sla"].value == kpi.value  # the page shows the KPI function's figure
    RuleFactory(name="Other p95", model=v3.model, consecutive_breaches=1)
    assert model_sla(period, KpiFilters()).value == Decimal("50.0")  # Other now watched and healthy: 1 of 2


def test_champion_and_challenger_side_by_side(catalog, role_client):
    now = timezone.now()
    base = floor_hour(now) - timedelta(hours=2)
    latency(base, HIGH)
    latency(base, LOW, version="2.2.0")
    url = reverse("alerts:model-health") + f"?champion={catalog.v1.pk}&challenger={catalog.v2.pk}&environment=prod"
    response = role_client(Role.PRODUCT_MANAGER).get(url)
    comparison = response.context["comparison"]
    metrics = {label: (a, b) for label, a, b, _ in comparison.metrics}
    assert metrics["Latency p95"] == (pytest.approx(628.5), pytest.approx(128.5))
    names = [t["name"] for t in response.context["comparison_fig"]["data"]]
    assert "2.1.0 (champion)" in names and "2.2.0 (challenger)" in names
    other = ModelVersionFactory(model__slug="other", version="1.0")
    bad = role_client(Role.PRODUCT_MANAGER).get(
        reverse("alerts:model-health") + f"?champion={catalog.v1.pk}&challenger={other.pk}"
    )
    assert "must be versions of the same model" in bad.content.decode()


def test_distributions_api_stores_a_valid_batch_and_refuses_an_invalid_one(catalog, role_client):
    admin = role_client(Role.ADMIN)
    ok = admin.post(
        "/api/v1/alerts/distributions/",
        {"distributions": [{"model": "ranker", "timestamp": "2026-11-02T09:00:00Z", "samples": [1, 2, 3]}]},
        content_type="application/json",
    )
    assert ok.status_code == 200 and ok.json() == {"received": 1, "stored": 1}
    bad = admin.post(
        "/api/v1/alerts/distributions/",
        {"distributions": [{"model": "ranker", "timestamp": "2026-11-02T09:00:00Z", "samples": [1, "x"]}]},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert bad.json()["errors"] == [
        {"index": 0, "field": "samples", "value": "x", "message": "sample 1 is not a finite number"}
    ]
    assert (
        role_client(Role.PRODUCT_MANAGER)
        .post("/api/v1/alerts/distributions/", {"distributions": []}, content_type="application/json")
        .status_code
        == 403
    )


def test_the_audit_page_lists_changes_with_before_and_after(catalog, role_client):
    admin = role_client(Role.ADMIN)
    TeamFactory(slug="pricing")
    created = admin.post(
        "/api/v1/alerts/rules/",
        {
            "name": "Errors",
            "metric": "error_rate",
            "model": "ranker",
            "comparison": "gt",
            "threshold": "0.02",
            "window_minutes": 60,
            "consecutive_breaches": 1,
            "owner_team": "pricing",
        },
        content_type="application/json",
    ).json()
    admin.patch(f"/api/v1/alerts/rules/{created['id']}/", {"threshold": "0.03"}, content_type="application/json")
    page = role_client(Role.EXECUTIVE).get(reverse("alerts:audit") + "?target=rule").content.decode()
    assert 'data-action="created"' in page and 'data-action="updated"' in page
    assert "<code>threshold</code>" in page and "0.02" in page and "0.03" in page


def test_a_silenced_alert_is_not_counted_as_waiting_for_its_owner(firing, role_client):
    from apps.alerts.models import Silence

    def counts() -> tuple[str, str, str]:
        page = role_client(Role.EXECUTIVE).get(reverse("alerts:list")).content.decode()
        return tuple(
            page.split(f'data-testid="count-{k}">', 1)[1].split("<", 1)[0]
            for k in ("firing", "silenced", "unacknowledged")
        )

    assert counts() == ("1", "0", "1")
    now = timezone.now()
    firing.silenced_by = Silence.objects.create(
        rule=firing.rule, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1), comment="deploying"
    )
    firing.save()
    assert counts() == ("0", "1", "0")  # muted: it neither fires nor waits for an acknowledgement
