"""A refused request is logged in one line; other errors keep their traceback."""

import io
import logging

import pytest


@pytest.fixture
def console():
    """What the configured console handler writes."""
    handler = next(
        h
        for h in logging.getLogger().handlers
        if any(f.__class__.__name__ == "RefusalWithoutTraceback" for f in h.filters)
    )
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def test_refusal_is_one_line(exec_client, console):
    response = exec_client.get("/settings/")
    assert response.status_code == 403
    logged = console.getvalue()
    assert "Forbidden (Permission denied): /settings/" in logged
    assert "Traceback" not in logged
    assert len(logged.strip().splitlines()) == 1


def test_other_errors_keep_their_traceback(console):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("django.request").error("Internal Server Error: /x/", exc_info=True)
    logged = console.getvalue()
    assert "Traceback" in logged and "ValueError: boom" in logged
