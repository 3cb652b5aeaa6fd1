"""Backup and restore: a dump restored into an empty database gives the same KPI figures.

The portal holds billing rollups, a delivery history (features, deployments, incidents), adoption events
and NPS answers, SLA rules with a firing alert, a target, users and an API token. ``backup_portal`` dumps it;
a second, empty database is created and migrated by a child process, ``restore_portal`` loads the dump
there, and a child process reads ``/api/v1/kpis/`` from the restored database with the executive's API
token (so passwords' and tokens' hashes came across too). Truncated and corrupt dumps are refused with
nothing written, and so is a restore into a database that already holds data.
"""

import contextlib
import gzip
import io
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from apps.accounts.models import ApiToken
from apps.accounts.roles import Role
from apps.accounts.services import api_token_create
from apps.adoption.services import events_ingest, nps_campaign_create, nps_responses_ingest, rollups_refresh_all
from apps.alerts.models import Alert
from apps.catalog.models import MLModel, ModelVersion
from apps.delivery.services import team_delivery_profile_set
from apps.kpis.models import Target
from tests.alerts.factories import RuleFactory
from tests.delivery.conftest import COMMITS, DEPLOYMENTS, FEATURES, INCIDENTS
from tests.delivery.factories import environments, iso, rollup, send, sha, team_and_service
from tests.factories import ProductFactory, UserFactory
from tests.utils import child_env, run_manage, run_python

pytestmark = pytest.mark.django_db(transaction=False)

PERIOD = "2026-02"
KPI_SCRIPT = """
import json, sys
import django
django.setup()
from django.test import Client
response = Client().get("/api/v1/kpis/?period={period}", HTTP_AUTHORIZATION="Token {key}")
assert response.status_code == 200, response.content
print(json.dumps(response.json(), sort_keys=True))
"""
COUNT_SCRIPT = """
import django
django.setup()
from apps.accounts.models import User
from apps.billing.models import CostRollup
print(User.objects.count(), CostRollup.objects.count())
"""


@pytest.fixture
def portal(users):
    """Every app's data behind the headline KPIs for February 2026."""
    envs = environments()
    alpha, svc_a = team_and_service("alpha", "svc-a", "100.00")
    beta, svc_b = team_and_service("beta", "svc-b", "80.00")
    team_delivery_profile_set(team=beta, hours_per_point=Decimal("5.00"))
    send("changes", [{"commit": sha(c), "committed_at": iso(*t)} for c, t in COMMITS.items()])
    send("deployments", DEPLOYMENTS, source="ci")
    send("features", FEATURES, source="tracker")
    send("incidents", [{**i, "deployment_source": "ci"} for i in INCIDENTS], source="pager")
    for day, service, env, cost in [
        (date(2026, 1, 20), svc_a, "dev", "100.00"),
        (date(2026, 2, 10), svc_a, "dev", "300.00"),
        (date(2026, 2, 15), svc_b, "uat", "500.00"),
        (date(2026, 2, 10), svc_a, "prod", "9999.123456789012345678"),
        (date(2026, 2, 11), None, "dev", "777.00"),
    ]:
        rollup(day=day, service=service, environment=envs[env], cost=cost)
    Target.objects.create(kpi="cloud_cost", month=date(2026, 2, 1), value=Decimal("11000"), direction="down")

    # Adoption: two products' events in January and February, and NPS answers.
    owner = UserFactory(username="owner-pm", role=Role.PRODUCT_MANAGER)
    products = {
        "alpha": ProductFactory(slug="alpha", name="Alpha", owner=owner, service=svc_a, usage_event_names=["used"]),
        "beta": ProductFactory(slug="beta", name="Beta", owner=owner, service=svc_b, usage_event_names=["used"]),
    }
    events = []
    for i in range(40):
        product = "alpha" if i % 3 else "beta"
        for month, day in ((1, 5 + i % 20), (2, 3 + i % 25)):
            if month == 2 or i % 2:
                events.append(
                    {
                        "event_id": str(uuid.UUID(int=i * 100 + month)),
                        "product": product,
                        "user_id": f"emp-{i:03d}",
                        "event": "used",
                        "timestamp": datetime(2026, month, day, 9 + i % 8, tzinfo=UTC).isoformat(),
                        "properties": {"role": "clerk"},
                    }
                )
    result = events_ingest(events, schedule_refresh=False)
    assert not result.errors
    rollups_refresh_all()
    campaign = nps_campaign_create(actor=owner, product=products["alpha"], name="Winter", opens_on=date(2026, 1, 1))
    answers = [
        {
            "campaign": campaign.slug,
            "user_id": f"emp-{i:03d}",
            "score": s,
            "submitted_at": f"2026-02-{10 + i}T10:00:00Z",
        }
        for i, s in enumerate([10, 9, 9, 7, 3, 10, 6, 8, 10, 0])
    ]
    assert not nps_responses_ingest(answers).errors

    # Model SLA: two production versions watched by a rule; one of them breached in February.
    model = MLModel.objects.create(slug="pricer", name="Pricer", task="regression", service=svc_a, team=alpha)
    v1 = ModelVersion.objects.create(model=model, version="1.0", stage="production")
    ModelVersion.objects.create(model=model, version="2.0", stage="production")
    rule = RuleFactory(name="pricer p95", model=model)
    fired = datetime(2026, 2, 14, 8, tzinfo=UTC)
    Alert.objects.create(
        rule=rule,
        rule_name=rule.name,
        fingerprint="backup0000000001",
        labels={"model": "pricer", "version": "1.0", "environment": "prod"},
        model=model,
        version=v1,
        environment=envs["prod"],
        state="resolved",
        severity="critical",
        value=812.5,
        threshold=Decimal("500"),
        breaches=3,
        started_at=fired,
        fired_at=fired,
        resolved_at=datetime(2026, 2, 14, 11, tzinfo=UTC),
        last_evaluated_at=datetime(2026, 2, 14, 11, tzinfo=UTC),
    )
    _, key = api_token_create(user=users[Role.EXECUTIVE], name="backup-check", scope=ApiToken.Scope.READ)
    return key


def _kpis(response_json: dict) -> dict:
    return {k["key"]: k for k in response_json["kpis"]}


@pytest.fixture
def empty_database(tmp_path):
    """The URL of a new, empty database beside the test database (same server for PostgreSQL)."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.sqlite3'}"
        return
    import psycopg2
    from psycopg2 import sql

    name = f"{settings['NAME']}_restore"[:63]
    params = {
        "dbname": "postgres",
        "user": settings["USER"],
        "password": settings.get("PASSWORD") or None,
        "host": settings["HOST"] or "127.0.0.1",
        "port": settings["PORT"] or 5432,
    }

    def drop(conn):
        with conn.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    admin = psycopg2.connect(**params)
    admin.autocommit = True
    drop(admin)
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    from urllib.parse import quote

    auth = quote(settings["USER"] or "") + (":" + quote(settings["PASSWORD"]) if settings.get("PASSWORD") else "")
    try:
        yield f"postgres://{auth}@{params['host']}:{params['port']}/{name}"
    finally:
        drop(admin)
        admin.close()


def _lines(dump) -> list[str]:
    with gzip.open(dump, "rt", encoding="utf-8") as stream:
        return stream.read().splitlines(keepends=True)


def _truncated(dump, path):
    """The same dump cut short mid-file: still a well-formed gzip stream, but without its end."""
    lines = _lines(dump)
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.writelines(lines[: len(lines) * 2 // 3])
    return path


def _corrupted(dump, path):
    """The same dump with one row's JSON damaged two thirds of the way in."""
    lines = _lines(dump)
    at = len(lines) * 2 // 3
    lines[at] = lines[at][: len(lines[at]) // 2] + "\n"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.writelines(lines)
    return path


def test_a_backup_restored_into_an_empty_database_gives_the_same_kpis(portal, exec_client, empty_database, tmp_path):
    before = exec_client.get(f"/api/v1/kpis/?period={PERIOD}").json()
    figures = _kpis(before)
    # Non-trivial figures from each app, worked out in their own tests; here they only must survive the trip.
    february = Decimal("300.00") + Decimal("500.00") + Decimal("9999.123456789012345678") + Decimal("777.00")
    assert abs(Decimal(figures["cloud_cost"]["value"]) - february) < Decimal("0.000001")
    for key in ("cost_per_feature", "mau", "nps", "model_sla"):
        assert figures[key]["value"] is not None, key
    assert Decimal(figures["model_sla"]["value"]) == Decimal("50")

    dump = tmp_path / "portal.jsonl.gz"
    out = io.StringIO()
    call_command("backup_portal", str(dump), stdout=out)
    assert "Backed up" in out.getvalue()
    header = json.loads(_lines(dump)[0])
    assert header["counts"]["accounts.user"] >= 4 and header["counts"]["billing.costrollup"] == 5
    assert "sessions.session" not in header["counts"]

    env = child_env(DATABASE_URL=empty_database)
    migrated = run_manage("migrate", "--noinput", "-v0", env=env, timeout=600)
    assert migrated.returncode == 0, migrated.stderr

    def counts():
        done = run_python(COUNT_SCRIPT, env=env)
        assert done.returncode == 0, done.stderr
        return tuple(int(n) for n in done.stdout.split())

    # A damaged dump is refused, and nothing of it is written.
    for bad in (_truncated(dump, tmp_path / "cut.jsonl.gz"), _corrupted(dump, tmp_path / "bad.jsonl.gz")):
        refused = run_manage("restore_portal", str(bad), env=env)
        assert refused.returncode != 0
        assert "nothing was changed" in refused.stderr and (
            "cut short" in refused.stderr or "corrupt" in refused.stderr
        )
        assert counts() == (0, 0)
    cut_gzip = tmp_path / "cut-gzip.jsonl.gz"
    cut_gzip.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    refused = run_manage("restore_portal", str(cut_gzip), env=env)
    assert refused.returncode != 0 and "cut short" in refused.stderr
    assert counts() == (0, 0)

    restored = run_manage("restore_portal", str(dump), env=env, timeout=600)
    assert restored.returncode == 0, restored.stderr
    assert "the counts match the backup" in restored.stdout
    assert counts() == (header["counts"]["accounts.user"], 5)

    after = run_python(KPI_SCRIPT.format(period=PERIOD, key=portal), env=env)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == json.loads(json.dumps(before, sort_keys=True))

    # The restored database now holds data: a second restore is refused, and a forced one with a bad file
    # changes nothing.
    again = run_manage("restore_portal", str(dump), env=env)
    assert again.returncode != 0 and "already holds data" in again.stderr
    forced = run_manage("restore_portal", str(tmp_path / "cut.jsonl.gz"), "--force", env=env)
    assert forced.returncode != 0
    assert counts() == (header["counts"]["accounts.user"], 5)
    still = run_python(KPI_SCRIPT.format(period=PERIOD, key=portal), env=env)
    assert json.loads(still.stdout) == json.loads(after.stdout)

    # New rows get fresh ids after the restore (sequences were moved past the restored ones).
    created = run_python(
        "import django; django.setup()\n"
        "from apps.catalog.models import Team\n"
        "print(Team.objects.create(slug='after-restore', name='After restore', hourly_rate=1).pk)",
        env=env,
    )
    assert created.returncode == 0, created.stderr


LINE_ITEMS_SCRIPT = """
import django
django.setup()
from django.db import connection
from django.db.models import Count, Sum
from apps.billing.models import BillingLineItem
totals = BillingLineItem.objects.aggregate(n=Count("id"), billed=Sum("billed_cost"), effective=Sum("effective_cost"))
ids = sorted(BillingLineItem.objects.values_list("id", flat=True))
partitions = 0
if connection.vendor == "postgresql":
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'billing_billinglineitem'::regclass")
        partitions = cursor.fetchone()[0]
print(totals["n"], totals["billed"], totals["effective"], hash(tuple(ids)), partitions)
"""


@pytest.mark.django_db(transaction=True)
def test_imported_line_items_survive_a_backup_and_restore(users, empty_database, tmp_path):
    from apps.billing import partitions
    from apps.billing.models import BillingSource
    from apps.billing.services import billing_import_path

    partitions.drop_empty()  # earlier tests' partitions, emptied when the database was emptied between tests

    sample = Path(__file__).resolve().parents[3] / "shared" / "data" / "focus-1.0_sample_1000.csv"
    for name in ("one", "two"):
        imported = billing_import_path(source=BillingSource.objects.create(name=name), path=str(sample))
        assert imported.rows_imported == 1000
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(LINE_ITEMS_SCRIPT, {})  # what the same script prints in the restored database's process
    here = printed.getvalue()
    count, *_, partitions = here.split()
    assert int(count) == 2000 and int(partitions) == (2 if connection.vendor == "postgresql" else 0)

    dump = tmp_path / "portal.jsonl.gz"
    call_command("backup_portal", str(dump), stdout=io.StringIO())
    env = child_env(DATABASE_URL=empty_database)
    migrated = run_manage("migrate", "--noinput", "-v0", env=env, timeout=600)
    assert migrated.returncode == 0, migrated.stderr
    restored = run_manage("restore_portal", str(dump), env=env, timeout=600)
    assert restored.returncode == 0, restored.stderr
    there = run_python(LINE_ITEMS_SCRIPT, env=env)
    assert there.returncode == 0, there.stderr
    assert there.stdout == here  # the same rows, ids, money and (on PostgreSQL) partitions


def test_a_dump_from_another_migration_state_is_refused(users, tmp_path):
    dump = tmp_path / "portal.jsonl.gz"
    call_command("backup_portal", str(dump), stdout=io.StringIO())
    lines = _lines(dump)
    header = json.loads(lines[0])
    header["migrations"]["catalog"].append("0099_from_the_future")
    lines[0] = json.dumps(header) + "\n"
    other = tmp_path / "future.jsonl.gz"
    with gzip.open(other, "wt", encoding="utf-8") as out:
        out.writelines(lines)
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="0099_from_the_future"):
        call_command("restore_portal", str(other), "--force", stdout=io.StringIO())
    with pytest.raises(CommandError, match="already holds data"):
        call_command("restore_portal", str(dump), stdout=io.StringIO())


@pytest.mark.django_db(transaction=True)
def test_the_pg_dump_method_round_trips_on_postgresql(users, exec_client, empty_database, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("--method pg_dump backs up PostgreSQL only; this run is on SQLite")
    envs = environments()
    _, svc = team_and_service("gamma", "svc-g", "90.00")
    for day, env, cost in [(date(2026, 1, 9), "prod", "120.50"), (date(2026, 2, 3), "prod", "80.25")]:
        rollup(day=day, service=svc, environment=envs[env], cost=cost)
    Target.objects.create(kpi="cloud_cost", month=date(2026, 2, 1), value=Decimal("100"), direction="down")
    _, key = api_token_create(user=users[Role.EXECUTIVE], name="pg-check", scope=ApiToken.Scope.READ)
    before = exec_client.get(f"/api/v1/kpis/?period={PERIOD}").json()
    assert Decimal(_kpis(before)["cloud_cost"]["value"]) == Decimal("80.25")

    dump = tmp_path / "portal.pgdump"
    call_command("backup_portal", str(dump), "--method", "pg_dump", stdout=io.StringIO())
    env = child_env(DATABASE_URL=empty_database)
    restored = run_manage("restore_portal", str(dump), "--method", "pg_dump", env=env, timeout=600)
    assert restored.returncode == 0, restored.stderr
    assert "run migrate" not in restored.stdout
    after = run_python(KPI_SCRIPT.format(period=PERIOD, key=key), env=env)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == json.loads(json.dumps(before, sort_keys=True))
    again = run_manage("restore_portal", str(dump), "--method", "pg_dump", env=env)
    assert again.returncode != 0 and "already has tables" in again.stderr
