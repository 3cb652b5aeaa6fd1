"""Logging filters."""

import logging

from django.core.exceptions import PermissionDenied


class RefusalWithoutTraceback(logging.Filter):
    """A refused request (PermissionDenied, HTTP 403) is logged in one line: the refusal is the expected
    outcome of a role check, and its traceback only buries the lines that matter."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PermissionDenied):
            record.exc_info = None
            record.exc_text = None
        return True
