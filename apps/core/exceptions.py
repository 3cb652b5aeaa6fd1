class ApplicationError(Exception):
    """A business rule refused the operation; the message is safe to show to the user."""
