"""Rules through the page and the API: exact validation messages, admins only, every change in the audit trail."""

from decimal import Decimal

import pytest
from django.urls import reverse

from apps.accounts.roles import Role
from apps.alerts.models import AlertRule, AuditEntry, NotificationChannel, Silence
from apps.catalog.models import CapacityPool
from tests.factories import TeamFactory, UserFactory
from tests.telemetry.factories import ModelVersionFactory

from .conftest import T0, hour
from .factories import ChannelFactory, RuleFactory

pytestmark = pytest.mark.django_db


def form_data(catalog, **overrides) -> dict:
    owner = UserFactory(username="owner-pm", role=Role.PRODUCT_MANAGER)
    data = {
        "name": "Ranker p95",
        "enabled": "on",
        "metric": "latency_p95",
        "model": catalog.model.pk,
        "environment": catalog.prod.pk,
        "group_by": ["model", "version", "environment"],
        "comparison": "gt",
        "threshold": "500",
        "window_minutes": "60",
        "consecutive_breaches": "3",
        "no_data": "keep",
        "severity": "critical",
        "owner_user": owner.pk,
        "group_interval_minutes": "5",
        "repeat_interval_minutes": "240",
        "drift_method": "psi",
        "drift_reference": "previous",
        "drift_reference_days": "7",
        "action": "save",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def errors_of(response) -> dict:
    form = response.context["form"]
    return {name: [str(e) for e in errs] for name, errs in form.errors.items()}


@pytest.fixture
def admin(role_client):
    return role_client(Role.ADMIN)


def test_admin_creates_a_rule_and_the_audit_trail_records_it(catalog, admin, admin_user):
    channel = ChannelFactory(name="Owners", email_to=[], email_owner=True)
    response = admin.post(reverse("alerts:rule-create"), form_data(catalog, channels=[channel.pk]))
    rule = AlertRule.objects.get(name="Ranker p95")
    assert response.status_code == 302 and response["Location"] == reverse("alerts:rule-detail", args=[rule.pk])
    assert (rule.threshold, rule.created_by) == (Decimal("500"), admin_user)
    entry = AuditEntry.objects.get(target_type="rule", target_id=rule.pk)
    assert (entry.action, entry.actor, entry.before) == ("created", admin_user, None)
    assert entry.after["threshold"] == "500" and entry.after["channels"] == ["Owners"]
    assert entry.after["model"] == "ranker" and entry.after["owner_user"] == "owner-pm"

    # An edit records before and after; saving without a change records nothing.
    data = form_data(catalog, threshold="450", channels=[channel.pk])
    data["owner_user"] = rule.owner_user_id
    admin.post(reverse("alerts:rule-edit", args=[rule.pk]), data)
    admin.post(reverse("alerts:rule-edit", args=[rule.pk]), data)
    updates = AuditEntry.objects.filter(target_type="rule", action="updated")
    assert updates.count() == 1
    assert updates.get().changes == [("threshold", "500", "450")]

    admin.post(reverse("alerts:rule-delete", args=[rule.pk]))
    assert not AlertRule.objects.exists()
    deleted = AuditEntry.objects.get(action="deleted", target_type="rule")
    assert deleted.before["name"] == "Ranker p95" and deleted.after is None


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"threshold": "5", "metric": "error_rate"},
            "threshold",
            "Error rate is a share between 0 and 1 (0.05 = 5 %); 5 would mean 500 %.",
        ),
        (
            {"recovery_threshold": "600"},
            "recovery_threshold",
            "The rule fires above 500, so it must recover at or below it; 600 is above the threshold.",
        ),
        (
            {"comparison": "lt", "recovery_threshold": "400"},
            "recovery_threshold",
            "The rule fires below 500, so it must recover at or above it; 400 is below the threshold.",
        ),
        ({"window_minutes": "90"}, "window_minutes", None),
        ({"owner_user": ""}, "owner_user", "Choose an owner: a user or a team."),
        (
            {"escalate_after_minutes": "30"},
            "escalation_user",
            "Name the second contact to escalate to when nobody acknowledges in time.",
        ),
        ({"threshold": "-1"}, "threshold", "Latency p95 cannot be negative; -1 would never be crossed."),
        ({"metric": "kpi", "kpi_key": ""}, "kpi_key", None),
        ({"consecutive_breaches": "0"}, "consecutive_breaches", None),
        (
            {"repeat_interval_minutes": "2"},
            "repeat_interval_minutes",
            "The repeat interval (2 min) must be at least the group interval (5 min).",
        ),
    ],
)
def test_the_rule_form_says_exactly_what_is_wrong(catalog, admin, overrides, field, message):
    response = admin.post(reverse("alerts:rule-create"), form_data(catalog, **overrides))
    assert response.status_code == 400
    errors = errors_of(response)
    assert field in errors, errors
    if message:
        assert message in errors[field]
    assert not AlertRule.objects.exists()


def test_scope_mistakes_are_named(catalog, admin):
    other = ModelVersionFactory(model__slug="other", model__name="Other model", version="9.0")
    response = admin.post(reverse("alerts:rule-create"), form_data(catalog, version=other.pk))
    assert "Version 9.0 belongs to Other model, not Ranker." in errors_of(response)["version"]
    pool = CapacityPool.objects.create(slug="gpu", name="GPU fleet", resource_type="gpu", environment=catalog.prod)
    response = admin.post(
        reverse("alerts:rule-create"), form_data(catalog, metric="prediction_drift", threshold="0.2", pool=pool.pk)
    )
    assert errors_of(response)["pool"] == [
        "A capacity pool does not apply to prediction drift; it can be scoped by model, version, environment, "
        "service. Clear this field."
    ]
    response = admin.post(
        reverse("alerts:rule-create"), form_data(catalog, metric="utilisation", model=catalog.model.pk)
    )
    assert errors_of(response)["model"][0].startswith("A model does not apply to capacity utilisation")


def test_an_owner_team_without_an_address_cannot_be_emailed(catalog, admin):
    team = TeamFactory(slug="vision", name="Vision")
    channel = ChannelFactory(name="Owners", email_to=[], email_owner=True)
    response = admin.post(
        reverse("alerts:rule-create"), form_data(catalog, owner_user="", owner_team=team.pk, channels=[channel.pk])
    )
    assert errors_of(response)["channels"] == [
        "Channel Owners emails the owner, but the team Vision has no alert address (add one under Team alert "
        "contacts in the admin site)."
    ]


@pytest.mark.parametrize("role", [Role.EXECUTIVE, Role.PRODUCT_MANAGER])
def test_only_admins_create_change_or_delete_rules_and_silences_on_the_pages(catalog, role_client, role):
    rule = RuleFactory(model=catalog.model)
    client = role_client(role)
    assert client.post(reverse("alerts:rule-create"), form_data(catalog)).status_code == 403
    assert client.post(reverse("alerts:rule-edit", args=[rule.pk]), form_data(catalog)).status_code == 403
    assert client.post(reverse("alerts:rule-delete", args=[rule.pk])).status_code == 403
    silence = {"rule": rule.pk, "starts_at": "2026-11-02T09:00", "ends_at": "2026-11-02T11:00", "comment": "x"}
    assert client.post(reverse("alerts:silence-create"), silence).status_code == 403
    assert AlertRule.objects.count() == 1 and not Silence.objects.exists()
    assert not AuditEntry.objects.exists()
    # Reading is open to every role.
    assert client.get(reverse("alerts:rules")).status_code == 200
    assert client.get(reverse("alerts:rule-detail", args=[rule.pk])).status_code == 200


def api_rule(**overrides) -> dict:
    body = {
        "name": "Ranker errors",
        "metric": "error_rate",
        "model": "ranker",
        "environment": "prod",
        "comparison": "gt",
        "threshold": "0.02",
        "window_minutes": 60,
        "consecutive_breaches": 2,
        "no_data": "ok",
        "severity": "warning",
        "owner_team": "pricing",
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize(("role", "status"), [(Role.EXECUTIVE, 403), (Role.PRODUCT_MANAGER, 403), (Role.ADMIN, 201)])
def test_only_admins_write_rules_through_the_api(catalog, role_client, role, status):
    TeamFactory(slug="pricing", name="Pricing")
    response = role_client(role).post("/api/v1/alerts/rules/", api_rule(), content_type="application/json")
    assert response.status_code == status, response.content
    if status == 201:
        rule = AlertRule.objects.get()
        assert response.json()["model"] == "ranker" and rule.owner_team.slug == "pricing"
        assert AuditEntry.objects.get().action == "created"


def test_api_rule_changes_are_validated_like_the_form_and_audited(catalog, role_client, users):
    TeamFactory(slug="pricing", name="Pricing")
    admin = role_client(Role.ADMIN)
    bad = admin.post(
        "/api/v1/alerts/rules/", api_rule(threshold="2", window_minutes=45), content_type="application/json"
    )
    assert bad.status_code == 400
    assert bad.json()["threshold"] == ["Error rate is a share between 0 and 1 (0.05 = 5 %); 2 would mean 200 %."]
    assert bad.json()["window_minutes"][0].startswith("The window must be a whole number of hours")
    created = admin.post("/api/v1/alerts/rules/", api_rule(), content_type="application/json").json()
    url = f"/api/v1/alerts/rules/{created['id']}/"
    patched = admin.patch(url, {"threshold": "0.05"}, content_type="application/json")
    assert patched.status_code == 200 and patched.json()["threshold"] == "0.05000000"
    assert (
        role_client(Role.PRODUCT_MANAGER).patch(url, {"threshold": "0.5"}, content_type="application/json").status_code
        == 403
    )
    assert admin.delete(url).status_code == 204
    trail = list(AuditEntry.objects.order_by("pk").values_list("action", "actor__username"))
    assert trail == [("created", "adminuser"), ("updated", "adminuser"), ("deleted", "adminuser")]
    assert AuditEntry.objects.get(action="updated").changes == [("threshold", "0.02", "0.05")]


@pytest.mark.parametrize(("role", "status"), [(Role.EXECUTIVE, 403), (Role.PRODUCT_MANAGER, 403), (Role.ADMIN, 201)])
def test_only_admins_write_silences_through_the_api_and_they_are_audited(catalog, role_client, role, status):
    rule = RuleFactory(model=catalog.model)
    body = {
        "rule": rule.pk,
        "environment": "prod",
        "starts_at": T0.isoformat(),
        "ends_at": hour(2).isoformat(),
        "comment": "Load test",
    }
    client = role_client(role)
    response = client.post("/api/v1/alerts/silences/", body, content_type="application/json")
    assert response.status_code == status
    if status == 201:
        silence_id = response.json()["id"]
        bad = client.patch(
            f"/api/v1/alerts/silences/{silence_id}/", {"ends_at": T0.isoformat()}, content_type="application/json"
        )
        assert bad.json()["ends_at"] == [
            "The silence must end after it starts (2026-11-02 09:00 UTC); 2026-11-02 09:00 UTC is not later."
        ]
        assert client.delete(f"/api/v1/alerts/silences/{silence_id}/").status_code == 204
        assert list(AuditEntry.objects.order_by("pk").values_list("target_type", "action")) == [
            ("silence", "created"),
            ("silence", "deleted"),
        ]


def test_silence_pages_create_end_and_delete_with_the_audit_trail(catalog, admin):
    rule = RuleFactory(model=catalog.model)
    response = admin.post(
        reverse("alerts:silence-create"),
        {"rule": rule.pk, "starts_at": "2026-11-02T09:00", "ends_at": "2026-11-02T08:00", "comment": ""},
    )
    assert response.status_code == 400
    errors = errors_of(response)
    assert errors["comment"] == ["Say why: the reason is shown with every alert the silence mutes."]
    assert errors["ends_at"][0].startswith("The silence must end after it starts")
    admin.post(
        reverse("alerts:silence-create"),
        {"rule": rule.pk, "starts_at": "2026-11-02T09:00", "ends_at": "2099-01-01T00:00", "comment": "Migration"},
    )
    silence = Silence.objects.get()
    admin.post(reverse("alerts:silence-expire", args=[silence.pk]))
    silence.refresh_from_db()
    assert silence.ends_at.year == 2026
    assert [a for (a,) in AuditEntry.objects.order_by("pk").values_list("action")] == ["created", "expired"]


def test_channels_are_admin_only_and_need_what_their_kind_needs(catalog, role_client, admin):
    assert role_client(Role.PRODUCT_MANAGER).get(reverse("alerts:channels")).status_code == 403
    assert role_client(Role.EXECUTIVE).get("/api/v1/alerts/channels/").status_code == 403
    response = admin.post(
        reverse("alerts:channel-create"),
        {
            "name": "Hook",
            "kind": "webhook",
            "url": "https://hooks.example/x",
            "timeout_seconds": 5,
            "max_attempts": 3,
            "backoff_seconds": 10,
        },
    )
    assert errors_of(response)["secret_env_var"][0].startswith("Name the environment variable holding the signing")
    response = admin.post(
        reverse("alerts:channel-create"),
        {
            "name": "Mail",
            "kind": "email",
            "email_to": "a@x.org, nope",
            "timeout_seconds": 5,
            "max_attempts": 3,
            "backoff_seconds": 10,
        },
    )
    assert errors_of(response)["email_to"] == ["Not email addresses: nope."]
    admin.post(
        reverse("alerts:channel-create"),
        {
            "name": "Hook",
            "kind": "webhook",
            "url": "https://hooks.example/x",
            "secret_env_var": "HOOK_SECRET",
            "timeout_seconds": 5,
            "max_attempts": 3,
            "backoff_seconds": 10,
            "enabled": "on",
        },
    )
    assert NotificationChannel.objects.get().secret_env_var == "HOOK_SECRET"
    assert AuditEntry.objects.get().after["secret_env_var"] == "HOOK_SECRET"
