"""A real Celery worker process, on the configured broker, runs a task whose effect lands in the database."""

import time
import uuid

import pytest

from apps.core.models import WorkerHeartbeat
from apps.core.tasks import heartbeat_task
from tests.utils import start_worker, stop_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker():
    """Start `celery worker` on a queue of its own, so no other worker can take the test's task."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    queue = f"q-{name}"
    proc = start_worker(queue, name)
    try:
        yield {"hostname": f"{name}@localhost", "queue": queue, "proc": proc}
    finally:
        stop_worker(proc)


def test_worker_process_runs_a_task_and_writes_to_the_database(worker):
    assert not WorkerHeartbeat.objects.filter(hostname=worker["hostname"]).exists()
    heartbeat_task.apply_async(queue=worker["queue"])

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if WorkerHeartbeat.objects.filter(hostname=worker["hostname"]).exists():
            break
        if worker["proc"].poll() is not None:
            pytest.fail(f"worker exited early:\n{worker['proc'].stdout.read()}")
        time.sleep(0.25)
    else:
        worker["proc"].terminate()
        pytest.fail(f"the task did not reach the database in 90 s; worker log:\n{worker['proc'].communicate()[0]}")

    heartbeat = WorkerHeartbeat.objects.get(hostname=worker["hostname"])
    assert (time.time() - heartbeat.seen_at.timestamp()) < 120
