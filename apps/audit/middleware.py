"""Makes the current request known to the audit trail (see :mod:`apps.audit.context`)."""

from . import context


class AuditContextMiddleware:
    """Place after AuthenticationMiddleware. The user is read when a change is saved, not here, so API
    requests authenticated by Django REST framework (tokens) are attributed to the token's user."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = context.set_request(request)
        try:
            return self.get_response(request)
        finally:
            context.reset(token)
