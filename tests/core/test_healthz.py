"""/healthz: 200 when the database and broker answer; 503 naming the part that failed.

The failure cases run the real view in a child process whose broker or database points at a closed
port, as it would in production when Redis or PostgreSQL is down.
"""

import json

import pytest

from tests.utils import child_env, current_database_url, run_python

CLOSED_PORT = 1  # nothing listens on port 1 on loopback

PROBE = """
import django, json
django.setup()
from django.test import Client
r = Client().get('/healthz')
print(json.dumps({'status_code': r.status_code, 'body': r.json()}))
"""


def _probe(**env) -> dict:
    result = run_python(PROBE, env=child_env(**env))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_healthz_is_ok_when_database_and_broker_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["failed"] == []
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_healthz_names_the_broker_when_it_is_down():
    report = _probe(DATABASE_URL=current_database_url(), CELERY_BROKER_URL=f"redis://127.0.0.1:{CLOSED_PORT}/0")
    assert report["status_code"] == 503
    assert report["body"]["failed"] == ["broker"]
    assert report["body"]["checks"]["database"]["status"] == "ok"
    assert "error" in report["body"]["checks"]["broker"]


def test_healthz_names_the_database_when_it_is_down():
    report = _probe(DATABASE_URL=f"postgres://postgres@127.0.0.1:{CLOSED_PORT}/opsportal")
    assert report["status_code"] == 503
    assert report["body"]["failed"] == ["database"]
    assert report["body"]["checks"]["broker"]["status"] == "ok"
