"""A real worker process re-allocates stored cost after a rule change: the rollups then hold what the rule
claims, summed here independently from the file."""

import csv
import json
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from django.db.models import Sum

from apps.billing import services
from apps.billing.models import AllocationRule, BillingImport, BillingSource, CostRollup, Reallocation
from apps.billing.tasks import reallocate_task
from tests.factories import ServiceFactory
from tests.utils import start_worker, stop_worker

from .money import assert_money_equal

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "focus-1.0_sample_1000.csv"


@pytest.fixture
def worker():
    name = f"realloc-{uuid.uuid4().hex[:8]}"
    proc = start_worker(f"q-{name}", name)
    try:
        yield {"queue": f"q-{name}", "proc": proc}
    finally:
        stop_worker(proc)


def test_a_worker_reallocates_every_stored_period_after_a_rule_change(worker):
    source = BillingSource.objects.create(name="sample", format="focus")
    imported = services.billing_import_path(source=source, path=str(SAMPLE))
    assert imported.status == BillingImport.Status.SUCCEEDED, imported.error
    with open(SAMPLE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    tags = [json.loads(r["Tags"]) if r["Tags"] not in ("", "NULL") else {} for r in rows]
    application, _ = Counter(t["application"] for t in tags if "application" in t).most_common(1)[0]
    expected = sum(
        (Decimal(r["EffectiveCost"]) for r, t in zip(rows, tags, strict=True) if t.get("application") == application),
        Decimal(0),
    )
    service = ServiceFactory(slug="sample-app", name=application)
    AllocationRule.objects.create(
        name="by application", order=1, match="tag", tag_key="application", value=application, service=service
    )
    assert not CostRollup.objects.filter(service=service).exists()  # stored before the rule

    reallocation = services.allocation_rules_changed(reason="rule by application added", queue=False)
    reallocate_task.apply_async(args=[reallocation.pk], queue=worker["queue"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        reallocation.refresh_from_db()
        if reallocation.is_finished:
            break
        if worker["proc"].poll() is not None:
            pytest.fail(f"the worker exited:\n{worker['proc'].stdout.read()}")
        time.sleep(0.2)
    else:
        worker["proc"].terminate()
        pytest.fail(f"not re-allocated in 120 s; worker log:\n{worker['proc'].communicate(timeout=20)[0]}")

    assert reallocation.status == Reallocation.Status.SUCCEEDED, reallocation.error
    assert reallocation.periods_done == reallocation.periods_total == len(imported.periods)
    allocated = CostRollup.objects.filter(service=service).aggregate(total=Sum("effective_cost"))["total"]
    assert_money_equal(allocated, expected)
    total = CostRollup.objects.aggregate(total=Sum("effective_cost"))["total"]
    assert_money_equal(total, imported.effective_total)  # nothing lost or counted twice
