"""A re-allocation never interleaves with an import of the same source: it waits for the source's lock,
which an import holds until it commits (PostgreSQL; SQLite runs one writer at a time anyway)."""

import threading
import time
from pathlib import Path

import psycopg2
import pytest
from django.db import connection, connections

from apps.billing import services
from apps.billing.models import BillingSource, Reallocation

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
            assert reallocation.periods_total >= 1
        importer.rollback()  # the import ends
        thread.join(timeout=60)
    finally:
        importer.close()
    assert not errors, errors
    reallocation.refresh_from_db()
    assert reallocation.status == Reallocation.Status.SUCCEEDED
    assert reallocation.periods_done == reallocation.periods_total
