"""A worker killed (SIGKILL) in the middle of an import leaves nothing half-written, and the import
succeeds when the task is delivered again. Real worker processes, real broker, real database."""

import csv
import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from apps.billing.models import BillingImport, BillingLineItem, BillingSource
from apps.billing.tasks import billing_import_task
from tests.utils import ROOT, child_env, current_database_url

from .money import assert_money_equal
from .test_import_fastpath import scratch_tables

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "focus-1.0_sample_1000.csv"
COPIES = 40  # 40,000 rows: long enough to be caught mid-import row by row (SQLite)
COPIES_BY_COPY = 200  # PostgreSQL's bulk path writes 40,000 rows in well under a second


def _copied() -> int:
    """Rows the COPY of an import in this database has written so far (PostgreSQL), uncommitted."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy "
            "WHERE datname = current_database() AND command = 'COPY FROM'"
        )
        return cursor.fetchone()[0]


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except FileNotFoundError:
        return []


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the worker exited while waiting for {what}:\n{proc.stdout.read()}")
        time.sleep(0.05)
    proc.terminate()
    pytest.fail(f"timed out waiting for {what}; worker log:\n{proc.communicate(timeout=20)[0]}")


@pytest.fixture
def big_file(tmp_path) -> tuple[Path, Decimal, int]:
    copies = COPIES_BY_COPY if connection.vendor == "postgresql" else COPIES
    lines = SAMPLE.read_text().splitlines()
    path = tmp_path / "big.csv"
    with open(path, "w") as out:
        out.write(lines[0] + "\n")
        for _ in range(copies):
            out.write("\n".join(lines[1:]) + "\n")
    with open(SAMPLE, newline="") as fh:
        billed = sum((Decimal(r["BilledCost"]) for r in csv.DictReader(fh)), Decimal("0"))
    return path, billed * copies, 1000 * copies


def test_killed_import_leaves_no_rows_and_succeeds_on_redelivery(big_file):
    path, expected_billed, rows = big_file
    source = BillingSource.objects.create(name="kill-test")
    billing_import = BillingImport.objects.create(
        source=source,
        filename=path.name,
        stored_path=str(path),
        size=path.stat().st_size,
        trigger=BillingImport.Trigger.UPLOAD,
    )
    queue = f"q-kill-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "opsportal",
            "worker",
            "-Q",
            queue,
            "-n",
            f"{queue}@localhost",
            "--pool=prefork",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=child_env(DATABASE_URL=current_database_url()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        billing_import_task.apply_async(args=[billing_import.pk], queue=queue)

        def running():
            billing_import.refresh_from_db()
            return billing_import.status == BillingImport.Status.RUNNING

        _wait(running, 120, "the import to start", proc)
        if connection.vendor == "postgresql":  # some thousands of rows written inside its transaction
            _wait(lambda: _copied() >= 5000, 60, "the import's COPY to write rows", proc)
        else:
            time.sleep(1.0)
        child = _wait(lambda: _children(proc.pid), 10, "the pool process", proc)[0]
        os.kill(child, signal.SIGKILL)

        billing_import.refresh_from_db()
        assert billing_import.status == BillingImport.Status.RUNNING, "the import finished before it was killed"
        assert BillingLineItem.objects.filter(source=source).count() == 0  # nothing half-written

        def finished():
            billing_import.refresh_from_db()
            return billing_import.is_finished

        _wait(finished, 240, "the redelivered import to finish", proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    assert billing_import.status == BillingImport.Status.SUCCEEDED, billing_import.error
    assert billing_import.attempts == 2
    assert BillingLineItem.objects.filter(source=source).count() == rows
    assert_money_equal(billing_import.billed_total, expected_billed)
    assert scratch_tables() == []  # the killed attempt's work tables were dropped by the retry
