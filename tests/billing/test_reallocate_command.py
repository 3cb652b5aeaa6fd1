"""`manage.py reallocate_billing`: the re-allocation a worker would run, here, with a progress bar."""

import io

import pytest
from django.core.management import call_command
from django.db.models import Sum

from apps.billing import services
from apps.billing.models import AllocationRule, BillingLineItem, CostRollup, Reallocation

from .money import assert_money_equal
from .test_unit_cost import build_scenario

pytestmark = pytest.mark.django_db


def test_the_command_runs_the_waiting_reallocation_and_reports_it(tmp_path):
    build_scenario(tmp_path)
    rule = AllocationRule.objects.get(name="Alpha")
    rule.enabled = False
    services.allocation_rule_save(rule=rule)
    services.allocation_rule_delete(rule=AllocationRule.objects.get(name="Beta"))
    out, err = io.StringIO(), io.StringIO()
    call_command("reallocate_billing", stdout=out, stderr=err)
    periods = len(set(BillingLineItem.objects.values_list("source_id", "billing_period_start")))
    assert out.getvalue().strip() == (
        f"Re-allocated {periods} billing period(s) after rule Alpha changed and 1 later change(s)."
    )
    assert not Reallocation.objects.filter(status=Reallocation.Status.QUEUED).exists()
    # Neither tag rule claims anything now: what they claimed is unallocated, in the line items and rollups.
    assert not BillingLineItem.objects.filter(allocation_rule__name="Alpha").exists()
    claimed_by_none = BillingLineItem.objects.filter(allocation_rule__isnull=True)
    assert claimed_by_none.filter(tags__service__in=["alpha", "beta"]).exists()
    unallocated = CostRollup.objects.filter(service__isnull=True)
    assert_money_equal(
        unallocated.aggregate(total=Sum("effective_cost"))["total"],
        claimed_by_none.aggregate(total=Sum("effective_cost"))["total"],
    )


def test_without_a_waiting_one_the_command_reallocates_anyway(tmp_path):
    build_scenario(tmp_path)
    before = CostRollup.objects.aggregate(total=Sum("effective_cost"))["total"]
    CostRollup.objects.all().delete()  # rollups lost: the command rebuilds them from the line items
    out = io.StringIO()
    call_command("reallocate_billing", "--no-progress", stdout=out)
    assert "after re-allocation asked for on the command line" in out.getvalue()
    assert_money_equal(CostRollup.objects.aggregate(total=Sum("effective_cost"))["total"], before)
