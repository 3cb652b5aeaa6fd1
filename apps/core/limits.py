"""Size limits on what clients send, checked before anything is parsed, stored or imported.

- Every request body: a multipart upload up to the largest per-file limit (billing files), any other body
  (JSON batches, forms) up to ``DATA_UPLOAD_MAX_MEMORY_SIZE``. ``RequestSizeLimitMiddleware`` answers 413
  from the Content-Length header alone, before the body is read (DRF reads JSON bodies straight from the
  stream, so Django's own check on ``request.body`` would not see them).
- Each uploaded file: billing exports up to ``OPSPORTAL_MAX_UPLOAD_MB``, adoption and delivery CSVs up to
  ``OPSPORTAL_MAX_CSV_UPLOAD_MB`` (``upload_size_problem``, called by the upload forms and serializers).
- Batches inside a body (events, points, delivery items) have their own item limits in their services.
"""

from django.conf import settings
from django.http import HttpResponse, JsonResponse

MB = 1024 * 1024
API_PREFIX = "/api/"

LIMITS = {
    # kind: (setting with the limit in bytes, environment variable an operator changes, what it covers)
    "billing": ("MAX_UPLOAD_BYTES", "OPSPORTAL_MAX_UPLOAD_MB", "a billing file"),
    "csv": ("MAX_CSV_UPLOAD_BYTES", "OPSPORTAL_MAX_CSV_UPLOAD_MB", "a CSV import"),
}


def size_text(n: int) -> str:
    return f"{n / MB:,.1f} MB" if n >= MB else f"{n:,} bytes"


def upload_limit(kind: str) -> int:
    return getattr(settings, LIMITS[kind][0])


def upload_size_problem(upload, kind: str) -> str | None:
    """Why an uploaded file is too large to import, or None. ``kind`` is "billing" or "csv"."""
    limit = upload_limit(kind)
    size = getattr(upload, "size", None) or 0
    if size <= limit:
        return None
    _, variable, what = LIMITS[kind]
    name = getattr(upload, "name", None) or "the file"
    return (
        f"{name} is {size_text(size)}; {what} may be at most {size_text(limit)} ({variable}). "
        "Nothing was imported: split the file."
    )


def body_limit(request) -> int:
    if request.content_type == "multipart/form-data":
        return max(upload_limit(kind) for kind in LIMITS) + MB  # the parts' headers and the other fields
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


class RequestSizeLimitMiddleware:
    """413 for a request whose declared body is larger than the portal accepts, before it is read."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = body_limit(request)
        if length > limit:
            message = (
                f"the request body is {size_text(length)}; the portal accepts at most {size_text(limit)} "
                f"per request{' for an upload' if request.content_type == 'multipart/form-data' else ''}. "
                "Nothing was stored: send smaller batches or files."
            )
            if request.path.startswith(API_PREFIX):
                return JsonResponse({"detail": message}, status=413)
            return HttpResponse(message[:1].upper() + message[1:], status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
