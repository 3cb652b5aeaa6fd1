"""The demo's SLA rules: created through the services, evaluated over the demo telemetry; one fires, one is
silenced; a second run adds nothing but new evaluations."""

import io
import re

import pytest
from django.core.management import call_command

from apps.alerts.models import Alert, AlertRule, AuditEntry, Silence

pytestmark = pytest.mark.django_db


def test_demo_rules_include_one_firing_and_one_silenced_and_rerun_cleanly():
    out = io.StringIO()
    call_command("load_demo", "--only", "accounts", "catalog", "telemetry", "alerts", stdout=out)
    seconds = float(re.search(r"\[alerts\] done in ([\d.]+)s", out.getvalue()).group(1))
    assert seconds < 20
    open_alerts = Alert.objects.filter(resolved_at__isnull=True)
    loud = open_alerts.filter(state="firing", silenced_by__isnull=True)
    muted = open_alerts.filter(state="firing", silenced_by__isnull=False)
    assert loud.filter(rule__name="Promotion ranker canary error rate").exists()
    assert muted.filter(rule__name="Shelf gap detector p95 latency").exists()
    assert muted.get().silenced_by.comment.startswith("Known: planogram firmware rollout")
    rules = AlertRule.objects.count()
    created = AuditEntry.objects.filter(target_type="rule", action="created").count()
    assert created == rules == 8

    call_command("load_demo", "--only", "alerts", stdout=io.StringIO())
    assert AlertRule.objects.count() == rules and Silence.objects.count() == 1
    assert AuditEntry.objects.filter(target_type="rule").count() == created  # nothing changed, nothing recorded
    assert Alert.objects.filter(rule__name="Promotion ranker canary error rate", resolved_at__isnull=True).count() == 1
