"""GitHub-style deployment webhooks: signature check and mapping a payload onto a deployment record.

GitHub signs each delivery with ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`` using
the webhook's secret, names the event in ``X-GitHub-Event`` and the delivery in ``X-GitHub-Delivery``.
A ``deployment_status`` event carries ``deployment`` (id, sha, environment, created_at, payload,
repository) and ``deployment_status`` (state, environment, created_at). States: success; failure and
error (failed); queued, pending and in_progress (not finished); inactive (GitHub marks an older
deployment inactive when a newer one succeeds, which says nothing about the older one's result).
"""

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from typing import Any

from .records import RecordError, RowError, timestamp

DEPLOYMENT_EVENTS = {"deployment", "deployment_status"}
STATES = {
    "success": "success",
    "failure": "failure",
    "error": "failure",
    "queued": "in_progress",
    "pending": "in_progress",
    "in_progress": "in_progress",
}
# Where each deployment column comes from in the payload, for error messages.
FIELD_PATHS = {
    "deployment_id": "deployment.id",
    "service": "deployment.payload.service (or the source's repository map)",
    "environment": "deployment_status.environment",
    "deployed_at": "deployment_status.created_at",
    "status": "deployment_status.state",
    "commit": "deployment.sha",
    "changes": "deployment.payload.changes",
    "committed_at": "deployment.payload.changes[].committed_at",
}


class WebhookError(Exception):
    """A refused delivery: ``status`` is the HTTP status to answer with, ``errors`` the refused fields."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.errors = errors or []


def secret_for(source) -> str:
    # The variable's *name* is configuration (stored on the source); its value, the secret, lives only
    # in the process environment, so a database dump never reveals it.
    return os.environ.get(source.secret_env_var, "") if source.secret_env_var else ""


def signature_for(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(*, source, body: bytes, header: str | None) -> None:
    if not header:
        raise WebhookError(401, "the X-Hub-Signature-256 header is missing: sign each delivery with the shared secret")
    if not header.startswith("sha256=") or len(header) != len("sha256=") + 64:
        raise WebhookError(401, "the X-Hub-Signature-256 header must be 'sha256=' followed by 64 hexadecimal digits")
    secret = secret_for(source)
    if not secret:
        raise WebhookError(503, f"webhook source {source.slug!r} has no secret configured on the server yet")
    if not hmac.compare_digest(signature_for(secret, body), header.strip().lower()):
        raise WebhookError(
            403, "the signature does not match the payload: check that both sides use the same webhook secret"
        )


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WebhookError(400, "the body must be a JSON object")
    return payload


@dataclass
class MappedDeployment:
    record: dict[str, Any]
    status_at: Any
    changes: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def _field_error(path: str, value: Any, expected: str) -> WebhookError:
    return WebhookError(
        400,
        "the deployment in this delivery was refused; nothing was written",
        [{"field": path, "value": "" if value is None else str(value)[:200], "expected": expected}],
    )


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _field_error(path, value, "a JSON object")
    return value


def _deploy_payload(deployment: dict[str, Any]) -> dict[str, Any]:
    # GitHub passes the deployer's payload through as given: an object, or a JSON string.
    raw = deployment.get("payload") or {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise _field_error("deployment.payload", raw, "a JSON object") from None
    return raw if isinstance(raw, dict) else {}


def deployment_record(payload: dict[str, Any], *, event: str, source) -> MappedDeployment | None:
    """The deployment record a delivery describes, or None for a status that carries no result (inactive)."""
    deployment = _object(payload.get("deployment"), "deployment")
    status = _object(payload.get("deployment_status"), "deployment_status") if event == "deployment_status" else {}
    state = str(status.get("state", "")).lower() if status else "pending"
    if state == "inactive":
        return None
    if state not in STATES:
        raise _field_error("deployment_status.state", state, "one of " + ", ".join([*STATES, "inactive"]))
    extra = _deploy_payload(deployment)
    repository = payload.get("repository") if isinstance(payload.get("repository"), dict) else {}
    service = (
        extra.get("service")
        or source.repository_services.get(repository.get("full_name", ""))
        or repository.get("name")
        or ""
    )
    finished = STATES[state] != "in_progress"
    when = (status.get("created_at") or status.get("updated_at")) if finished else deployment.get("created_at")
    changes, change_records = [], []
    for i, item in enumerate(extra.get("changes") or []):
        if isinstance(item, dict):
            sha = item.get("sha") or item.get("id") or ""
            changes.append(sha)
            if item.get("committed_at") or item.get("timestamp"):
                change_records.append(
                    (i, {"commit": sha, "committed_at": item.get("committed_at") or item.get("timestamp")})
                )
        else:
            changes.append(item)
    record = {
        "deployment_id": str(deployment.get("id", "")),
        "service": service,
        "environment": status.get("environment") or deployment.get("environment") or "",
        "deployed_at": when or "",
        "status": STATES[state],
        "commit": deployment.get("sha") or "",
        "changes": changes,
    }
    for change in change_records:
        change[1]["service"] = service
    status_at = status.get("updated_at") or status.get("created_at") or deployment.get("created_at")
    try:
        parsed_status_at = timestamp(status_at) if status_at else None
    except RecordError as exc:
        raise _field_error("deployment_status.created_at", status_at, str(exc)) from None
    return MappedDeployment(record, parsed_status_at, change_records)


def error_for_field(error: RowError) -> dict[str, Any]:
    return {"field": FIELD_PATHS.get(error.column, error.column), "value": error.value, "expected": error.expected}
