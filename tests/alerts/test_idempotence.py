"""Two workers, or a retried task, never create a second alert or a second notification."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, close_old_connections, connection, transaction

from apps.alerts.models import Alert, EvaluatorState, Notification
from apps.alerts.services import evaluation_cycle
from apps.alerts.tasks import evaluate_rules_task

from .conftest import hour, latency
from .factories import ChannelFactory, RuleFactory

HIGH = [600, 610, 620, 630]


@pytest.mark.django_db(transaction=True)
def test_two_workers_evaluating_the_same_minute_at_once_make_one_alert_and_one_notification(catalog):
    rule = RuleFactory(model=catalog.model, consecutive_breaches=1, channels=[ChannelFactory()])
    latency(hour(0), HIGH)
    at = hour(1).isoformat()
    barrier = threading.Barrier(2)
    outcomes, errors = [], []

    def worker():
        try:
            barrier.wait(timeout=10)
            outcomes.append(evaluate_rules_task.apply(kwargs={"at": at}).get())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()  # each thread had its own database connection

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    close_old_connections()
    assert errors == []
    assert sorted(o["evaluated"] for o in outcomes) == [False, True]
    assert Alert.objects.filter(rule=rule).count() == 1
    assert Notification.objects.count() == 1


@pytest.mark.django_db
def test_a_retried_evaluation_of_the_same_minute_changes_nothing(catalog):
    rule = RuleFactory(model=catalog.model, consecutive_breaches=3)
    latency(hour(0), HIGH)
    first = evaluation_cycle(at=hour(1))
    again = evaluation_cycle(at=hour(1) + timedelta(seconds=40))  # same minute: a redelivered task
    assert (first.evaluated, again.evaluated) == (True, False)
    assert Alert.objects.get(rule=rule).breaches == 1
    # An older minute arriving late is refused too: time only moves forward.
    assert evaluation_cycle(at=hour(1) - timedelta(minutes=5)).evaluated is False
    assert EvaluatorState.get().last_slot == hour(1)


@pytest.mark.django_db
def test_the_database_refuses_a_second_open_alert_and_a_second_notification(catalog):
    rule = RuleFactory(model=catalog.model, consecutive_breaches=1, channels=[ChannelFactory()])
    latency(hour(0), HIGH)
    evaluation_cycle(at=hour(1))
    alert = Alert.objects.get(rule=rule)
    twin = Alert(
        rule=rule,
        rule_name=rule.name,
        fingerprint=alert.fingerprint,
        labels=alert.labels,
        state="pending",
        severity=rule.severity,
        threshold=Decimal("1"),
        started_at=hour(1),
        last_evaluated_at=hour(1),
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        twin.save()
    notification = Notification.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(key=notification.key, kind="firing", next_attempt_at=hour(1), created_at=hour(1))
    # Once resolved, a new episode of the same instance may open.
    Alert.objects.filter(pk=alert.pk).update(state="resolved", resolved_at=hour(2))
    twin.save()
