"""Redis going away and coming back under a real worker: queued tasks survive, the worker reconnects by itself,
and an upload while Redis is down is refused with the reason instead of waiting for a task never queued.

The test starts a redis-server of its own, with the append-only file production needs (README, operations), so
a restart keeps what was queued. Its worker runs a billing import (a task that takes a while) with three alert
evaluations queued behind it; Redis is stopped while the import executes and the evaluations wait, then
started again. Each evaluation is a different minute of a rule that fires at the third breach in a row, so a
lost evaluation would leave the alert pending and a doubled one is refused by the evaluator: the user sees one
firing alert with one notification, and the import once.
"""

from datetime import timedelta
from pathlib import Path

import pytest

from apps.alerts.models import Alert, AuditEntry, Notification
from apps.alerts.tasks import evaluate_rules_task
from apps.billing.models import BillingImport, BillingLineItem, BillingSource
from apps.billing.tasks import billing_import_task
from opsportal.celery import app
from tests.alerts.conftest import hour, latency
from tests.alerts.factories import ChannelFactory, RuleFactory
from tests.factories import EnvironmentFactory
from tests.telemetry.factories import ModelVersionFactory
from tests.utils import child_env, current_database_url

from .procs import Redis, Worker, django_child, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "focus-1.0_sample_1000.csv"
COPIES = 20  # 20,000 rows: the import is still running when Redis stops
SLOTS = [hour(1), hour(1) + timedelta(minutes=1), hour(1) + timedelta(minutes=2)]

WEB_SIDE = """
from django.test import Client
from django.urls import reverse
from apps.accounts.roles import Role
from apps.billing.models import BillingImport, BillingSource
from tests.factories import UserFactory

health = Client().get("/healthz")
admin = Client()
admin_user = UserFactory(username="faults-admin", role=Role.ADMIN)
admin.force_login(admin_user)
source = BillingSource.objects.get(name="redis-outage")
with open({sample!r}, "rb") as fh:
    page = admin.post(reverse("billing:source-upload", args=[source.pk]), {{"file": fh}})
upload = BillingImport.objects.filter(source=source).latest("pk")
from rest_framework.test import APIClient
api = APIClient()
api.force_authenticate(admin_user)
with open({sample!r}, "rb") as fh:
    api_upload = api.post("/api/v1/billing/imports/", {{"source": source.pk, "file": fh}}, format="multipart")
folder = BillingSource.objects.create(name="redis-outage-folder", location={folder!r})
pull = admin.post(reverse("billing:source-pull", args=[folder.pk]))
from apps.billing import services as billing
from apps.billing.models import AllocationRule, Reallocation
billing.allocation_rule_save(rule=AllocationRule(name="outage", match="tag", tag_key="team", value="x", shared=True))
reallocation = Reallocation.objects.latest("pk")
result = {{
    "rule_saved": AllocationRule.objects.filter(name="outage").exists(), "realloc_status": reallocation.status,
    "realloc_error": reallocation.error, "rules_page": admin.get(reverse("billing:rules")).content.decode(),
    "pull_code": pull.status_code, "pull_page": pull.content.decode(),
    "api_upload_code": api_upload.status_code, "api_upload": api_upload.json(),
    "health": health.status_code, "report": health.json(), "upload_code": page.status_code,
    "upload_page": page.content.decode(), "upload_id": upload.pk, "upload_status": upload.status,
    "upload_error": upload.error,
}}
"""


@pytest.fixture
def import_file(tmp_path) -> BillingImport:
    lines = SAMPLE.read_text().splitlines()
    path = tmp_path / "focus.csv"
    with open(path, "w") as out:
        out.write(lines[0] + "\n")
        for _ in range(COPIES):
            out.write("\n".join(lines[1:]) + "\n")
    return BillingImport.objects.create(
        source=BillingSource.objects.create(name="redis-outage"),
        filename=path.name,
        stored_path=str(path),
        size=path.stat().st_size,
        trigger=BillingImport.Trigger.UPLOAD,
    )


@pytest.fixture
def firing_rule():
    """A latency rule breached in every minute evaluated, firing at the third breach in a row."""
    EnvironmentFactory(slug="prod", name="Production", kind="prod")
    version = ModelVersionFactory(model__slug="ranker", model__name="Ranker", version="2.1.0", stage="production")
    latency(hour(0), [600, 610, 620, 630])
    return RuleFactory(model=version.model, consecutive_breaches=3, channels=[ChannelFactory()])


def publish(redis: Redis, task, queue: str, **options):
    """Queue a task on the test's own Redis, as the web process does on the configured broker."""
    with app.connection_for_write(redis.url) as conn:
        return task.apply_async(connection=conn, queue=queue, **options)


def test_tasks_queued_or_running_when_redis_restarts_each_take_effect_once(import_file, firing_rule, tmp_path):
    with Redis() as redis:
        env = child_env(
            DATABASE_URL=current_database_url(),
            CELERY_BROKER_URL=redis.url,
            OPSPORTAL_UPLOAD_DIR=str(tmp_path / "uploads"),
        )
        with Worker(env=env) as worker:
            worker.wait_ready()
            imported = publish(redis, billing_import_task, worker.queue, args=[import_file.pk])
            evaluations = [
                publish(redis, evaluate_rules_task, worker.queue, kwargs={"at": at.isoformat()}) for at in SLOTS
            ]

            def import_running():
                import_file.refresh_from_db()
                return import_file.status == BillingImport.Status.RUNNING

            wait_for(import_running, timeout=60, what="the import to start", watch=(worker,))
            redis.stop()  # a normal shutdown: the queued evaluations are in the append-only file
            import_file.refresh_from_db()
            assert import_file.status == BillingImport.Status.RUNNING, "the import finished before Redis stopped"
            assert not Alert.objects.exists()  # the evaluations are still waiting in the queue

            # The web side, meanwhile: the health check names the broker, and an admin's upload is refused with
            # the reason (after the publish retries) instead of waiting for ever for a task that was never queued.
            web = django_child(WEB_SIDE.format(sample=str(SAMPLE), folder=str(tmp_path / "no-files-yet")), env=env)
            assert web["health"] == 503 and web["report"]["failed"] == ["broker"]
            assert web["upload_code"] == 200, web["upload_page"][-3000:]
            assert web["upload_status"] == BillingImport.Status.FAILED
            assert "the import could not be queued: the task broker is unreachable" in web["upload_error"]
            assert f"127.0.0.1:{redis.port}" in web["upload_error"]
            assert (
                "the import could not be queued" in web["upload_page"] and "Upload the file again" in web["upload_page"]
            )
            assert web["api_upload_code"] == 503, web["api_upload"]
            assert "the task broker is unreachable" in web["api_upload"]["detail"]
            # Any other button that queues work (here: "Pull now") answers 503 with the reason, not a server error.
            assert web["pull_code"] == 503, web["pull_page"][-3000:]
            assert "The task queue is unreachable" in web["pull_page"]
            assert "could not be queued" in web["pull_page"]
            # A rule saved meanwhile stands; its re-allocation is shown failed, with a button to start another.
            assert web["rule_saved"] and web["realloc_status"] == "failed"
            assert "could not be queued: the task broker is unreachable" in web["realloc_error"]
            assert "Re-allocation after rule outage added failed" in web["rules_page"]
            assert 'data-testid="reallocate-button"' in web["rules_page"]
            wait_for(
                lambda: "Connection to broker lost" in worker.log() or "Cannot connect" in worker.log(),
                timeout=30,
                what="the worker to notice that Redis is gone",
                watch=(worker,),
            )

            redis.start()  # same folder and port: the server reloads its append-only file

            def all_ran():
                return all(worker.outcomes(e.id) for e in evaluations) and worker.outcomes(imported.id)

            wait_for(all_ran, timeout=90, what="every queued task to run after Redis came back", watch=(worker,))
            # A task queued after the outage reaches the reconnected worker too.
            after = publish(redis, evaluate_rules_task, worker.queue, kwargs={"at": SLOTS[-1].isoformat()})
            wait_for(lambda: worker.outcomes(after.id), timeout=30, what="a task queued after the restart")

            assert [worker.outcomes(e.id) for e in evaluations] == [["succeeded"]] * 3, worker.log_tail()
            assert worker.outcomes(imported.id) == ["succeeded"]
            # Each minute was evaluated once; the repeat of the last one was refused.
            assert worker.log().count("'evaluated': True") == 3
            assert worker.log().count("'evaluated': False") == 1

    # What users see: the file imported once, and one firing alert with one notification.
    import_file.refresh_from_db()
    assert import_file.status == BillingImport.Status.SUCCEEDED, import_file.error
    assert import_file.attempts == 1
    assert BillingLineItem.objects.filter(source=import_file.source).count() == 1000 * COPIES
    alert = Alert.objects.get(rule=firing_rule)
    assert (alert.state, alert.breaches, alert.fired_at) == ("firing", 3, SLOTS[-1])
    assert list(AuditEntry.objects.filter(alert=alert).order_by("pk").values_list("action", flat=True)) == [
        "pending",
        "firing",
    ]
    assert Notification.objects.count() == 1
    assert list(Notification.objects.get().alerts.all()) == [alert]
