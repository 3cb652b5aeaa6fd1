"""The audit trail: every path that changes configuration (pages, API with a token, admin site, code) is recorded
with who, when, through what, and the values before and after; secrets never are; only admins read it."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken, User
from apps.accounts.roles import Role
from apps.accounts.services import api_token_create, api_token_revoke
from apps.alerts.models import NotificationChannel
from apps.audit import record
from apps.audit.context import acting_as
from apps.audit.models import AuditEntry
from apps.audit.registry import MASK
from apps.billing.models import BillingSource
from apps.catalog.models import Team
from apps.kpis.models import Target
from tests.factories import TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


def _entries(model, object_id=None):
    qs = AuditEntry.objects.filter(content_type=ContentType.objects.get_for_model(model)).order_by("pk")
    return list(qs if object_id is None else qs.filter(object_id=str(object_id)))


def _token_client(key: str) -> APIClient:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return c


# --- Recording ---------------------------------------------------------------------------------------------


def test_a_change_through_a_page_is_recorded_with_the_user_before_and_after(admin_client_portal, admin_user):
    form = {
        "name": "aws-focus",
        "format": "auto",
        "location": "https://billing.example.com/exports/focus.csv.gz",
        "auth_env_var": "AWS_BILLING_AUTH",
        "pull_every_minutes": "60",
        "enabled": "on",
    }
    response = admin_client_portal.post("/costs/sources/new/", form)
    assert response.status_code == 302, response.context["form"].errors
    source = BillingSource.objects.get(name="aws-focus")
    assert (
        admin_client_portal.post(f"/costs/sources/{source.pk}/edit/", {**form, "pull_every_minutes": "15"}).status_code
        == 302
    )

    created, updated = _entries(BillingSource, source.pk)
    assert (created.action, created.actor, created.actor_name, created.via) == (
        "created",
        admin_user,
        "adminuser",
        "page",
    )
    assert created.before is None and created.after["name"] == "aws-focus"
    assert created.after["auth_env_var"] == "AWS_BILLING_AUTH"  # a variable's name, not a secret
    assert created.ip == "127.0.0.1"
    assert updated.action == "updated" and updated.changed_fields == ["pull_every_minutes"]
    assert (updated.before["pull_every_minutes"], updated.after["pull_every_minutes"]) == (60, 15)
    assert updated.object_repr == "aws-focus"
    assert timezone.now() - updated.at < timedelta(minutes=5)


def test_saving_without_a_change_records_nothing_and_pull_bookkeeping_is_not_a_change(admin_client_portal):
    from apps.billing.services import billing_source_record_pull

    source = BillingSource.objects.create(name="azure", location="/data/azure/*.csv")
    source.save()
    billing_source_record_pull(source=source, error="connection refused")  # the worker's status update
    assert [e.action for e in _entries(BillingSource, source.pk)] == ["created"]


def test_a_change_through_the_api_with_a_token_is_recorded_with_the_tokens_user(users):
    admin = users[Role.ADMIN]
    _, key = api_token_create(user=admin, name="ci-deploy", scope=ApiToken.Scope.WRITE)
    client = _token_client(key)
    response = client.post(
        "/api/v1/catalog/teams/", {"slug": "vision", "name": "Vision", "hourly_rate": "120.00"}, format="json"
    )
    assert response.status_code == 201, response.content
    team_id = response.json()["id"]
    assert client.patch("/api/v1/catalog/teams/vision/", {"hourly_rate": "135.50"}, format="json").status_code == 200

    created, updated = _entries(Team, team_id)
    for entry in (created, updated):
        assert (entry.actor, entry.actor_name, entry.token_name, entry.via) == (admin, "adminuser", "ci-deploy", "api")
    assert created.after == {"slug": "vision", "name": "Vision", "hourly_rate": "120", "currency": "USD"}
    assert updated.changed_fields == ["hourly_rate"]
    assert (updated.before["hourly_rate"], updated.after["hourly_rate"]) == ("120", "135.5")

    assert client.delete("/api/v1/catalog/teams/vision/").status_code == 204
    deleted = _entries(Team, team_id)[-1]
    assert (deleted.action, deleted.actor_name, deleted.after) == ("deleted", "adminuser", None)
    assert deleted.before["name"] == "Vision" and deleted.object_repr == "Vision"


def test_a_change_in_the_admin_site_is_recorded_with_role_changes(admin_client_portal, admin_user):
    pm = UserFactory(username="newpm", role=Role.EXECUTIVE)
    pm.date_joined = pm.date_joined.replace(microsecond=0)  # as the admin form sends it back
    pm.save()
    url = f"/admin/accounts/user/{pm.pk}/change/"
    form = {
        "username": "newpm",
        "first_name": "",
        "last_name": "",
        "email": "newpm@example.com",
        "role": Role.PRODUCT_MANAGER,
        "is_active": "on",
        "digest_subscribed": "",
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": pm.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": pm.date_joined.strftime("%H:%M:%S"),
    }
    response = admin_client_portal.post(url, form)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    entry = _entries(User, pm.pk)[-1]
    assert (entry.action, entry.actor, entry.via) == ("updated", admin_user, "admin")
    assert entry.changed_fields == ["role"]
    assert (entry.before["role"], entry.after["role"]) == ("executive", "product_manager")


def test_secrets_are_masked_password_hashes_and_token_hashes_never_stored(admin_user):
    user = UserFactory(username="carol")
    user.set_password("a-new-long-password-42")
    user.save()
    token, key = api_token_create(user=user, name="laptop")
    api_token_revoke(token=token, actor=user)

    *_, password_change = _entries(User, user.pk)
    assert password_change.changed_fields == ["password"]
    assert password_change.before["password"] == password_change.after["password"] == MASK
    token_created, token_revoked = _entries(ApiToken, token.pk)
    assert token_created.after["key_hash"] == MASK and token_created.after["name"] == "laptop"
    assert token_revoked.changed_fields == ["revoked_at"]

    stored = " ".join(str((e.before, e.after)) for e in AuditEntry.objects.all())
    assert user.password not in stored
    assert token.key_hash not in stored and key not in stored and "a-new-long-password-42" not in stored


def test_secret_values_inside_json_and_urls_are_masked():
    channel = NotificationChannel.objects.create(
        name="ops-hook", kind="webhook", url="https://bot:hunter2secret@hooks.example.com/alerts"
    )
    entry = _entries(NotificationChannel, channel.pk)[0]
    assert "hunter2secret" not in str(entry.after)
    assert entry.after["url"] == f"https://bot:{MASK}@hooks.example.com/alerts"
    manual = record(
        model=NotificationChannel,
        object_id=channel.pk,
        object_repr="ops-hook",
        action="updated",
        before={"headers": {"X-Api-Key": "abc", "X-Trace": "1"}},
        after={"headers": {"X-Api-Key": "xyz", "X-Trace": "2"}},
    )
    assert manual.after == {"headers": {"X-Api-Key": MASK, "X-Trace": "2"}}


def test_code_without_a_request_is_the_system_unless_told_otherwise(admin_user):
    team = TeamFactory(slug="edge", name="Edge")
    assert _entries(Team, team.pk)[0].actor_name == "system"
    with acting_as(admin_user, via="command"):
        team.name = "Edge ML"
        team.save()
    entry = _entries(Team, team.pk)[-1]
    assert (entry.actor, entry.actor_name, entry.via) == (admin_user, "adminuser", "command")


def test_many_to_many_changes_join_the_saves_entry(admin_user):
    from apps.alerts.models import AlertRule
    from apps.alerts.services import rule_save

    channel = NotificationChannel.objects.create(name="mail", kind="email", email_to=["ops@example.com"])
    rule = AlertRule(name="p95 latency", metric="latency_p95", threshold=500, owner_user=admin_user)
    with acting_as(admin_user, via="page"):
        rule_save(rule=rule, channels=[channel], actor=admin_user)
    (entry,) = _entries(AlertRule, rule.pk)
    assert entry.action == "created" and entry.after["channels"] == [channel.pk]
    assert "channels" in entry.changed_fields


def test_targets_and_deletes_are_recorded(admin_user):
    from datetime import date

    target = Target.objects.create(kpi="mau", month=date(2026, 10, 1), value=1200, created_by=admin_user)
    target.value = 1500
    target.save()
    pk = target.pk
    target.delete()
    actions = [(e.action, e.changed_fields) for e in _entries(Target, pk)]
    assert actions[1] == ("updated", ["value"])
    assert actions[2][0] == "deleted"
    assert _entries(Target, pk)[2].before["value"] == "1500"


def test_high_volume_data_is_not_audited(users):
    from apps.adoption.models import Event
    from apps.audit.recording import SPECS
    from apps.billing.models import BillingLineItem, CostRollup
    from apps.telemetry.models import Point

    for model in (Event, BillingLineItem, CostRollup, Point, AuditEntry):
        assert model not in SPECS


# --- Reading -----------------------------------------------------------------------------------------------


@pytest.fixture
def trail(users):
    admin = users[Role.ADMIN]
    with acting_as(admin, via="page"):
        for i in range(30):
            TeamFactory(slug=f"team-a{i}", name=f"Alpha {i}")
    with acting_as(name="system", via="task"):
        BillingSource.objects.create(name="gcp-export")
    old = AuditEntry.objects.get(object_repr="Alpha 0")
    old.at = timezone.now() - timedelta(days=40)
    old.save()
    return admin


def test_the_page_lists_entries_newest_first_for_admins(admin_client_portal, trail):
    response = admin_client_portal.get("/settings/audit/")
    assert response.status_code == 200
    page = response.context["page"]
    ats = [e.at for e in page]
    assert ats == sorted(ats, reverse=True)
    assert page[0].object_repr == "gcp-export"
    assert b"gcp-export" in response.content


@pytest.mark.parametrize("role", [Role.EXECUTIVE, Role.PRODUCT_MANAGER])
def test_non_admins_get_403(role_client, trail, role):
    client = role_client(role)
    entry = AuditEntry.objects.first()
    assert client.get("/settings/audit/").status_code == 403
    assert client.get(f"/settings/audit/{entry.pk}/").status_code == 403
    assert client.get("/settings/audit/export.csv").status_code == 403
    assert client.get("/api/v1/audit/").status_code == 403


def test_filters_by_type_actor_action_date_and_object(admin_client_portal, trail):
    def names(query):
        return [e.object_repr for e in admin_client_portal.get(f"/settings/audit/?{query}").context["page"].object_list]

    assert names("model=billing.billingsource") == ["gcp-export"]
    assert names("actor=system&model=catalog.team") == []
    assert len(names("actor=adminuser&model=catalog.team")) == 30
    assert names("action=deleted") == []
    recent = (timezone.now() - timedelta(days=1)).date().isoformat()
    assert "Alpha 0" not in names(f"model=catalog.team&date_from={recent}")
    old_day = (timezone.now() - timedelta(days=40)).date().isoformat()
    assert names(f"date_from={old_day}&date_to={old_day}") == ["Alpha 0"]
    team = Team.objects.get(slug="team-a7")
    assert names(f"model=catalog.team&object_id={team.pk}") == ["Alpha 7"]
    assert names("q=alpha 1") == [f"Alpha {i}" for i in (19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 1)]
    response = admin_client_portal.get(f"/settings/audit/?date_from={recent}&date_to={old_day}")
    assert "is before" in response.content.decode()


def test_the_api_lists_and_filters_for_admins_only(users, trail):
    _, admin_key = api_token_create(user=users[Role.ADMIN], name="reader")
    _, exec_key = api_token_create(user=users[Role.EXECUTIVE], name="reader")
    response = _token_client(admin_key).get("/api/v1/audit/?model=billing.billingsource")
    assert response.status_code == 200
    (row,) = response.json()["results"]
    assert (row["model"], row["action"], row["actor_name"], row["via"]) == (
        "billing.billingsource",
        "created",
        "system",
        "task",
    )
    assert row["after"]["name"] == "gcp-export" and row["before"] is None
    assert _token_client(admin_key).get("/api/v1/audit/?date_from=yesterday").status_code == 400
    assert _token_client(exec_key).get("/api/v1/audit/").status_code == 403
    assert APIClient().get("/api/v1/audit/").status_code == 401


def test_the_detail_page_shows_each_field_before_and_after(admin_client_portal, admin_user):
    team = TeamFactory(slug="pricing", name="Pricing")
    with acting_as(admin_user, via="page"):
        team.name = "Pricing & Promotions"
        team.save()
    entry = _entries(Team, team.pk)[-1]
    response = admin_client_portal.get(f"/settings/audit/{entry.pk}/")
    assert response.status_code == 200
    rows = {r["field"]: r for r in response.context["rows"]}
    assert (rows["name"]["before"], rows["name"]["after"], rows["name"]["changed"]) == (
        "Pricing",
        "Pricing & Promotions",
        True,
    )
    assert rows["slug"]["changed"] is False
    html = response.content.decode()
    assert "Pricing &amp; Promotions" in html and "adminuser" in html


def test_csv_export_is_filtered_and_formula_safe(admin_client_portal, admin_user):
    TeamFactory(slug="formula", name='=HYPERLINK("http://x")')
    response = admin_client_portal.get("/settings/audit/export.csv?model=catalog.team")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["at", "actor", "token"]
    (row,) = rows[1:]
    assert row[8].startswith("'=")  # object name, escaped for spreadsheets
    assert row[5] == "created" and row[6] == "catalog.team"


def test_the_list_page_queries_do_not_grow_with_entries(admin_client_portal, trail):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client_portal.get("/settings/audit/").status_code == 200
        return len(ctx.captured_queries)

    few = count()
    with acting_as(name="system"):
        for i in range(40):
            TeamFactory(slug=f"team-b{i}", name=f"Beta {i}")
    assert count() == few
    assert few <= 12


def test_a_bulk_admin_action_on_audited_rows_is_recorded(admin_client_portal, admin_user):
    from apps.telemetry.models import MetricMapping, TelemetrySource

    source = TelemetrySource.objects.create(name="prom", base_url="http://prometheus:9090")
    mapping = MetricMapping.objects.create(
        source=source, metric="request_count", query="sum(x)", pulled_until=timezone.now() - timedelta(hours=2)
    )
    response = admin_client_portal.post(
        "/admin/telemetry/telemetrysource/", {"action": "backfill_again", "_selected_action": [source.pk]}
    )
    assert response.status_code == 302
    entry = _entries(MetricMapping, mapping.pk)[-1]
    assert (entry.action, entry.actor, entry.via, entry.changed_fields) == (
        "updated",
        admin_user,
        "admin",
        ["pulled_until"],
    )
    assert entry.after == {"pulled_until": None} and entry.before["pulled_until"]


def test_an_admin_deleting_their_own_account_is_recorded_by_name(admin_client_portal, admin_user):
    pk = admin_user.pk
    response = admin_client_portal.post(f"/admin/accounts/user/{pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    entry = _entries(User, pk)[-1]
    assert (entry.action, entry.actor, entry.actor_name, entry.via) == ("deleted", None, "adminuser", "admin")
