"""A re-allocation never interleaves with an import of the same source: it waits for the source's lock,
which an import holds until it commits (PostgreSQL; SQLite runs one writer at a time anyway)."""

import csv
import json
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest
from django.db import connection, connections
from django.db.models import Sum

from apps.billing import services
from apps.billing.models import AllocationRule, BillingSource, CostRollup, Reallocation
from tests.factories import ServiceFactory

from .money import assert_money_equal

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks of another session: PostgreSQL"),
]

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "focus-1.0_sample_1000.csv"


def test_a_reallocation_waits_for_an_import_of_the_same_source_to_commit():
    source = BillingSource.objects.create(name="locked", format="focus")
    services.billing_import_path(source=source, path=str(SAMPLE))
    reallocation = services.allocation_rules_changed(reason="test", queue=False)
    params = connection.get_connection_params()
    importer = psycopg2.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})
    errors = []

    def run():
        try:
            services.reallocation_run(reallocation_id=reallocation.pk)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    try:
        with importer.cursor() as cursor:  # an import of the source, in its transaction
            cursor.execute("SELECT id FROM billing_billingsource WHERE id = %s FOR UPDATE", [source.pk])
            thread = threading.Thread(target=run)
            thread.start()
            time.sleep(1.5)
            reallocation.refresh_from_db()
            assert (reallocation.status, reallocation.periods_done) == ("running", 0)  # waiting for the lock
        importer.rollback()  # the import ends
        thread.join(timeout=60)
    finally:
        importer.close()
    assert not errors, errors
    reallocation.refresh_from_db()
    assert reallocation.status == Reallocation.Status.SUCCEEDED
    assert reallocation.periods_done == reallocation.periods_total


def test_an_import_in_flight_when_a_rule_changes_is_reallocated_with_the_new_rule(monkeypatch):
    """The import read the rules before the change (and allocates its rows with them); the re-allocation
    waits for it to commit and then re-allocates its periods too, new ones included."""
    from apps.billing import importer

    source = BillingSource.objects.create(name="in flight", format="focus")
    with open(SAMPLE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    tags = [json.loads(r["Tags"]) if r["Tags"] not in ("", "NULL") else {} for r in rows]
    application, _ = Counter(t["application"] for t in tags if "application" in t).most_common(1)[0]
    expected = sum(
        (Decimal(r["EffectiveCost"]) for r, t in zip(rows, tags, strict=True) if t.get("application") == application),
        Decimal(0),
    )
    writing, release = threading.Event(), threading.Event()
    rolling_up = importer.refresh_periods

    def slow_roll_up(**kwargs):
        writing.set()  # rows written with the rules of before, not committed yet
        assert release.wait(60)
        rolling_up(**kwargs)

    monkeypatch.setattr(importer, "refresh_periods", slow_roll_up)
    results, errors = {}, []

    def run(what, work):
        try:
            results[what] = work()
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    importing = threading.Thread(
        target=run, args=("import", lambda: services.billing_import_path(source=source, path=str(SAMPLE)))
    )
    importing.start()
    assert writing.wait(60), errors
    service = ServiceFactory(slug="in-flight-app", name=application)
    AllocationRule.objects.create(
        name="by application", order=1, match="tag", tag_key="application", value=application, service=service
    )
    reallocation = services.allocation_rules_changed(reason="rule by application added", queue=False)
    reallocating = threading.Thread(
        target=run, args=("reallocation", lambda: services.reallocation_run(reallocation_id=reallocation.pk))
    )
    reallocating.start()
    time.sleep(1.5)
    reallocation.refresh_from_db()
    assert (reallocation.status, reallocation.periods_total) == ("running", 0)  # waiting for the import
    release.set()
    importing.join(timeout=120)
    reallocating.join(timeout=120)
    assert not errors, errors
    assert results["import"].status == "succeeded"
    assert results["reallocation"].periods_total == len(results["import"].periods)
    allocated = CostRollup.objects.filter(service=service).aggregate(total=Sum("effective_cost"))["total"]
    assert_money_equal(allocated, expected)
