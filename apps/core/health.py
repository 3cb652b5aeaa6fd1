"""The checks behind /healthz: each part answers ok or says what failed, within a short timeout."""

import time
from typing import Any

from django.conf import settings
from django.db import connection

BROKER_TIMEOUT_SECONDS = 3


def _check_database() -> dict[str, Any]:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means the database is not usable
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}".strip()}
    return {"status": "ok", "vendor": connection.vendor, "ms": round((time.monotonic() - started) * 1000, 1)}


def _check_broker() -> dict[str, Any]:
    from opsportal.celery import app

    started = time.monotonic()
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS)
            # A filesystem broker "connects" even to a missing folder: prove it can be written.
            if conn.transport_cls == "filesystem" or conn.transport.driver_type == "filesystem":
                folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
                with open(f"{folder}/.healthz", "w") as fh:
                    fh.write("ok")
            transport = conn.transport.driver_type
    except Exception as exc:  # kombu raises many types: connection refused, timeouts, auth errors
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}".strip()}
    return {"status": "ok", "transport": transport, "ms": round((time.monotonic() - started) * 1000, 1)}


def check_health() -> dict[str, Any]:
    checks = {"database": _check_database(), "broker": _check_broker()}
    failed = [name for name, result in checks.items() if result["status"] != "ok"]
    return {"status": "ok" if not failed else "error", "failed": failed, "checks": checks}
