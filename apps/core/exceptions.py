class ApplicationError(Exception):
    """A business rule refused the operation; the message is safe to show to the user."""


class QueueUnavailable(ApplicationError):
    """The work was recorded but could not be queued: the task broker is unreachable (the API answers 503)."""
