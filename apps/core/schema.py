"""OpenAPI schema post-processing: the error answers every operation can give, documented once.

Each view documents its success answer (and, where it has a specific body, its 400). The answers the
framework gives for any operation are added here, so a client reading the schema knows every status it
can receive:

- 400 the request is malformed or fails validation (body: field -> messages, or ``detail``),
- 401 no or an invalid ``Authorization: Token`` / session,
- 403 the user's role or the token's scope does not allow it,
- 404 the id or slug in the path names nothing, or the page of a paginated list does not exist,
- 405 not used: every documented method is routed,
- 409 the object is still referenced and cannot be deleted (deletes), or conflicts with stored data,
- 413 the body or a batch in it is larger than the portal accepts (operations with a request body),
- 415 the body's Content-Type is not one the operation reads (operations with a request body),
- 503 the task queue is unreachable, so work the operation queues was not queued (operations that change data),
- 507 an upload could not be stored: the upload folder is full or failing (operations with a request body).
"""

ERROR_COMPONENT = "ErrorDetail"
VALIDATION_COMPONENT = "ValidationErrorDetail"

ERROR_SCHEMA = {
    "type": "object",
    "description": "Why the request was refused.",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}
# DRF gives field -> list of messages, {"detail": ...}, or a list of messages; nested serializers nest.
VALIDATION_SCHEMA = {
    "description": "What is wrong with the request, by field (or `detail`, or a list of messages).",
    "oneOf": [{"type": "object", "additionalProperties": True}, {"type": "array", "items": {}}],
}

DESCRIPTIONS = {
    "400": "The request is malformed or fails validation.",
    "401": "Authentication is missing or invalid.",
    "403": "The user's role or the token's scope does not allow this.",
    "404": "No object with this key.",
    "409": "The request conflicts with stored data (for a delete: the object is still referenced).",
    "413": "The request body or a batch in it is larger than the portal accepts.",
    "415": "The request body's Content-Type is not one this operation reads.",
    "503": "The task queue is unreachable: the work this request queues was not queued; try again.",
    "507": "The upload could not be stored (no space left on the upload folder, or a write error).",
}


def _response(status: str) -> dict:
    component = VALIDATION_COMPONENT if status == "400" else ERROR_COMPONENT
    return {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
    }


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: add the standard error answers to every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(ERROR_COMPONENT, ERROR_SCHEMA)
    schemas.setdefault(VALIDATION_COMPONENT, VALIDATION_SCHEMA)
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            statuses = ["400", "401", "403"]
            parameters = operation.get("parameters", [])
            # A path key that names nothing, or a page past the last one of a paginated list.
            if any(p.get("in") == "path" or (p.get("in"), p.get("name")) == ("query", "page") for p in parameters):
                statuses.append("404")
            if method in {"post", "put", "patch", "delete"}:
                statuses += ["409", "503"]
            if "requestBody" in operation:
                statuses += ["413", "415", "507"]
            responses = operation.setdefault("responses", {})
            _widen_documented_400(responses)
            for status in statuses:
                responses.setdefault(status, _response(status))
    return result


def _widen_documented_400(responses: dict) -> None:
    """A view's own 400 body (e.g. a rejected batch listing every item) or DRF's field errors for a body that
    is not even the right shape: both are documented."""
    content = responses.get("400", {}).get("content", {}).get("application/json")
    if not content or "schema" not in content:
        return
    generic = {"$ref": f"#/components/schemas/{VALIDATION_COMPONENT}"}
    if content["schema"] != generic:
        content["schema"] = {"anyOf": [content["schema"], generic]}
