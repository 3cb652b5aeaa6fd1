import logging

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import JsonResponse
from django.shortcuts import render

logger = logging.getLogger(__name__)


class PortalLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Login required on every page (Django's LoginRequiredMiddleware), except the token-authenticated API.

    API calls authenticate inside Django REST framework (token or session) and answer 401/403 there,
    rather than being redirected to the login form.
    """

    API_PREFIXES = ("/api/v1/", "/api/schema/")

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path.startswith(self.API_PREFIXES):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class QueueUnavailableMiddleware:
    """A page or API call that queues work while the task broker is unreachable answers 503 with the reason.

    Publishing already retries for a few seconds (``CELERY_BROKER_TRANSPORT_OPTIONS``); after that the user learns
    that nothing was queued and can try again, instead of a bare server error.
    """

    MESSAGE = (
        "The task queue is unreachable ({error}), so this could not be queued. Nothing will run until you try "
        "again; if it persists, tell an opsportal admin (the health check at /healthz names the broker)."
    )

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from kombu.exceptions import OperationalError

        if not isinstance(exception, OperationalError):
            return None
        logger.error("broker unreachable while handling %s %s: %s", request.method, request.path, exception)
        message = self.MESSAGE.format(error=exception)
        if request.path.startswith(PortalLoginRequiredMiddleware.API_PREFIXES):
            return JsonResponse({"detail": message}, status=503)
        return render(request, "503.html", {"message": message}, status=503)
