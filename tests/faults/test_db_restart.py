"""PostgreSQL restarting in the middle of a billing import run by a real Celery worker.

The test starts a PostgreSQL cluster of its own (the shared server is never touched), migrates the portal into
it, starts a worker against it and restarts the server (``pg_ctl restart -m fast``) while the worker is writing
line items. The import must end succeeded on a retry, or failed with the database's error shown on its page; at
no moment may another session see part of the file; a duplicate delivery of the task imports nothing more.

It needs Debian's PostgreSQL server binaries, not DATABASE_URL: it runs the same on the SQLite default.
"""

import csv
import time
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest

from apps.billing.models import BillingImport, BillingLineItem
from apps.billing.tasks import billing_import_task
from tests.utils import child_env, run_manage

from .procs import Postgres, Worker, django_child, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.integration]

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "focus-1.0_sample_1000.csv"
COPIES = 20  # 20,000 rows: the restart lands while the worker writes them
IMPORTS = BillingImport._meta.db_table
LINES = BillingLineItem._meta.db_table


@pytest.fixture
def big_file(tmp_path) -> dict:
    lines = SAMPLE.read_text().splitlines()
    path = tmp_path / "focus-big.csv"
    with open(path, "w") as out:
        out.write(lines[0] + "\n")
        for _ in range(COPIES):
            out.write("\n".join(lines[1:]) + "\n")
    with open(SAMPLE, newline="") as fh:
        sample = list(csv.DictReader(fh))
    return {
        "path": path,
        "rows": len(sample) * COPIES,
        "billed": sum((Decimal(r["BilledCost"]) for r in sample), Decimal("0")) * COPIES,
        "effective": sum((Decimal(r["EffectiveCost"]) for r in sample), Decimal("0")) * COPIES,
    }


class Db:
    """Reads of the test's own cluster, as another session (a page being viewed) would see it."""

    def __init__(self, pg: Postgres) -> None:
        self.pg = pg
        self.conn = None

    def query(self, sql: str, *params):
        for _ in range(2):
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = psycopg2.connect(
                        host="127.0.0.1", port=self.pg.port, user="postgres", dbname="opsportal", connect_timeout=5
                    )
                    self.conn.autocommit = True
                with self.conn.cursor() as cur:
                    cur.execute(sql, params)
                    return cur.fetchone()
            except psycopg2.OperationalError:  # the server is restarting: the next call reconnects
                self.conn = None
                time.sleep(0.2)
        return None

    def lines(self, source_id: int) -> int | None:
        row = self.query(f"SELECT count(*) FROM {LINES} WHERE source_id = %s", source_id)
        return row[0] if row else None

    def status(self, import_id: int) -> str | None:
        row = self.query(f"SELECT status FROM {IMPORTS} WHERE id = %s", import_id)
        return row[0] if row else None

    def writing(self) -> bool:
        """A session other than this one is inside a transaction that has written (the import's COPY)."""
        row = self.query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'opsportal' AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend' AND backend_xid IS NOT NULL"
        )
        return bool(row and row[0])

    def close(self) -> None:
        if self.conn is not None and not self.conn.closed:
            self.conn.close()


SETUP = """
from apps.accounts.roles import Role
from apps.billing.models import BillingImport, BillingSource
from tests.factories import UserFactory

UserFactory(username="faults-admin", role=Role.ADMIN)
source = BillingSource.objects.create(name="db-restart")
path = {path!r}
imp = BillingImport.objects.create(
    source=source, filename="focus-big.csv", stored_path=path, size={size}, trigger=BillingImport.Trigger.UPLOAD
)
result = {{"source": source.pk, "import": imp.pk}}
"""

SEEN = """
from django.db.models import Sum
from django.test import Client
from django.urls import reverse
from apps.accounts.models import User
from apps.billing.models import BillingImport, BillingLineItem

client = Client()
client.force_login(User.objects.get(username="faults-admin"))
imports = []
for imp in BillingImport.objects.filter(source_id={source}).order_by("pk"):
    page = client.get(reverse("billing:import-detail", args=[imp.pk]))
    api = client.get(f"/api/v1/billing/imports/{{imp.pk}}/")
    imports.append({{
        "id": imp.pk, "status": imp.status, "attempts": imp.attempts, "error": imp.error,
        "rows_imported": imp.rows_imported, "rows_replaced": imp.rows_replaced,
        "billed_total": str(imp.billed_total), "effective_total": str(imp.effective_total),
        "page_code": page.status_code, "page": page.content.decode(),
        "api_code": api.status_code, "api": api.json(),
    }})
sums = BillingLineItem.objects.filter(source_id={source}).aggregate(b=Sum("billed_cost"), e=Sum("effective_cost"))
source_page = client.get(reverse("billing:source-detail", args=[{source}]))
result = {{
    "source_page": source_page.content.decode(),
    "imports": imports,
    "lines": BillingLineItem.objects.filter(source_id={source}).count(),
    "billed": str(sums["b"]), "effective": str(sums["e"]),
}}
"""


def test_a_database_restart_mid_import_is_retried_and_imports_the_file_exactly_once(big_file):
    with Postgres() as pg:
        env = child_env(DATABASE_URL=pg.url)
        db = Db(pg)
        try:
            with Worker(env=env) as worker:  # starts while the database is migrated
                migrated = run_manage("migrate", "--noinput", env=env, timeout=180)
                assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-4000:]
                size = big_file["path"].stat().st_size
                ids = django_child(SETUP.format(path=str(big_file["path"]), size=size), env=env)
                source_id, import_id = ids["source"], ids["import"]
                worker.wait_ready()
                task = billing_import_task.apply_async(args=[import_id], queue=worker.queue)

                # Restart the server while the worker's transaction holds written rows.
                wait_for(
                    lambda: db.status(import_id) == "running" and db.writing(),
                    timeout=60,
                    what="the worker to be writing line items",
                    watch=(worker,),
                )
                pg.restart()
                assert db.status(import_id) == "running", "the import finished before the restart"

                # Until it ends, any other session sees none of the file or all of it, never a part.
                seen = set()

                def finished():
                    seen.add(db.lines(source_id))
                    return db.status(import_id) in ("succeeded", "failed")

                wait_for(finished, timeout=120, what="the import to finish after the restart", watch=(worker,))
                seen.add(db.lines(source_id))
                seen.discard(None)  # a read that found the server still starting
                assert seen <= {0, big_file["rows"]}, f"partial imports were visible: {sorted(seen)}"
                assert worker.outcomes(task.id)[0] == "retry", worker.log_tail()

                # The same task delivered once more (a duplicate message) changes nothing.
                again = billing_import_task.apply_async(args=[import_id], queue=worker.queue)
                wait_for(lambda: worker.outcomes(again.id), timeout=60, what="the duplicate delivery", watch=(worker,))
                assert worker.outcomes(again.id) == ["succeeded"]
        finally:
            db.close()

        after = django_child(SEEN.format(source=source_id), env=env)
        (imp,) = after["imports"]
        assert imp["page_code"] == imp["api_code"] == 200
        assert imp["api"]["status"] == imp["status"]
        if imp["status"] == "succeeded":
            # Retried: every row once, the totals to the last digit, and the page tells it took two attempts.
            assert imp["attempts"] == 2
            assert after["lines"] == imp["rows_imported"] == big_file["rows"]
            assert Decimal(after["billed"]) == Decimal(imp["billed_total"]) == big_file["billed"]
            assert Decimal(after["effective"]) == Decimal(imp["effective_total"]) == big_file["effective"]
            assert f"Imported {big_file['rows']} rows" in imp["page"] and "(2 attempts)" in imp["page"]
            assert '<span class="status-ok">Succeeded</span>' in after["source_page"]
        else:
            # Given up: nothing imported, and the page and the API say the database connection was lost.
            assert after["lines"] == 0
            assert "database connection was lost" in imp["error"]
            assert imp["api"]["error"] == imp["error"]
            assert "Rejected: nothing was imported" in imp["page"] and "database connection was lost" in imp["page"]
            assert '<span class="status-failing">Failed</span>' in after["source_page"]
