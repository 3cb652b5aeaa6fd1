from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.exceptions import ValidationError

from apps.accounts.roles import Role

from .. import selectors
from ..forms import AuditFilterForm
from ..models import AuditEntry
from .serializers import PortalAuditEntrySerializer


class AuditListApi(generics.ListAPIView):
    """Every configuration change (sources, rules, targets, catalog, users, tokens, schedules), newest first.

    Admins only. Secrets (password and token hashes, secrets) appear masked.
    """

    serializer_class = PortalAuditEntrySerializer
    read_roles = frozenset({Role.ADMIN})
    filter_backends: list = []

    @extend_schema(
        summary="The audit trail of configuration changes",
        parameters=[
            OpenApiParameter("model", str, description='The object\'s type, e.g. "billing.billingsource".'),
            OpenApiParameter("actor", str, description="The user name (or 'system') who made the change."),
            OpenApiParameter("action", str, enum=AuditEntry.Action.values),
            OpenApiParameter("via", str, enum=AuditEntry.Via.values),
            OpenApiParameter("date_from", str, description="YYYY-MM-DD, the first day included."),
            OpenApiParameter("date_to", str, description="YYYY-MM-DD, the last day included."),
            OpenApiParameter("object_id", str, description="The changed object's id (with model)."),
            OpenApiParameter("q", str, description="The object's name contains this."),
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AuditEntry.objects.none()
        form = AuditFilterForm(self.request.query_params)
        if not form.is_valid():
            raise ValidationError(form.errors.get_json_data())
        return selectors.audit_entries(**form.filters())
