"""The API's error answers: always JSON, always a 4xx the schema documents (see apps/core/schema.py)."""

from django.db.models import ProtectedError, RestrictedError
from django.http import JsonResponse
from django.views import defaults
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

API_PREFIX = "/api/"


def _referenced_by(exc: ProtectedError | RestrictedError) -> str:
    objects = exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects
    counts: dict[str, int] = {}
    for obj in objects:
        name = obj._meta.verbose_name_plural
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))


def exception_handler(exc, context):
    """DRF's handler, plus 409 for deleting an object that other records still reference."""
    if isinstance(exc, ProtectedError | RestrictedError):
        return Response(
            {"detail": f"Cannot delete: still referenced by {_referenced_by(exc)}. Remove or reassign those first."},
            status=status.HTTP_409_CONFLICT,
        )
    return drf_exception_handler(exc, context)


def page_not_found(request, exception):
    """404 for any URL: JSON under /api/ (an id or slug that matches no route), the portal's page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
