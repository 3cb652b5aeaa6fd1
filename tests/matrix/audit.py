"""Routes of the audit trail: admins only, pages and API alike."""

from apps.audit.models import AuditEntry
from tests.factories import TeamFactory

from . import ADMIN_PAGE, API_READ_ADMIN, Route


def setup(users) -> None:
    TeamFactory(slug="matrix-audit-team", name="Matrix audit team")  # recorded by the audit trail


def _entry() -> dict:
    return {"pk": AuditEntry.objects.filter(object_repr="Matrix audit team").values_list("pk", flat=True).get()}


MATRIX = [
    Route("audit:list", "get", ADMIN_PAGE),
    Route("audit:export", "get", ADMIN_PAGE),
    Route("audit:detail", "get", ADMIN_PAGE, kwargs=_entry),
    Route("api-audit", "get", API_READ_ADMIN),
]
