import django_filters
from django.http.request import RawPostDataException
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, parsers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.roles import Role
from apps.core.periods import PeriodError, parse_period

from .. import selectors
from ..github import WebhookError
from ..models import Change, DeliveryImport, Deployment, Feature, Incident
from ..services import DeliveryImportRejected, delivery_api_ingest, delivery_csv_import, github_webhook_receive
from .serializers import (
    ChangeSerializer,
    CsvImportRequestSerializer,
    DeliveryImportSerializer,
    DeploymentSerializer,
    FeatureSerializer,
    IncidentSerializer,
    MetricsSerializer,
    RejectedSerializer,
    WebhookResponseSerializer,
    batch_request_serializer,
)

PERIOD_PARAM = OpenApiParameter(
    "period", str, description="YYYY-MM, YYYY-Qn, YYYY-Www, YYYY-MM-DD, YYYY or YYYY-MM-DD..YYYY-MM-DD"
)


def _period(request):
    try:
        return parse_period(request.query_params.get("period"), today=timezone.localdate())
    except PeriodError as exc:
        raise ValidationError({"period": str(exc)}) from None


class PeriodFilter(django_filters.CharFilter):
    """Rows whose time (``field_name``) falls in a period given as on the pages (e.g. 2026-10)."""

    def filter(self, qs, value):
        if not value:
            return qs
        try:
            period = parse_period(value, today=timezone.localdate())
        except PeriodError as exc:
            raise ValidationError({"period": str(exc)}) from None
        return qs.filter(**{f"{self.field_name}__gte": period.start_dt, f"{self.field_name}__lt": period.end_dt})


class FeatureFilter(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug")
    team = django_filters.CharFilter(field_name="team__slug")
    period = PeriodFilter(field_name="shipped_at", help_text="Shipped in this period.")
    shipped = django_filters.BooleanFilter(field_name="shipped_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Feature
        fields = ["service", "team", "period", "shipped"]


class DeploymentFilter(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug")
    environment = django_filters.CharFilter(field_name="environment__slug")
    period = PeriodFilter(field_name="deployed_at")

    class Meta:
        model = Deployment
        fields = ["service", "environment", "status", "period"]


class IncidentFilter(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug")
    period = PeriodFilter(field_name="started_at", help_text="Started in this period.")
    open = django_filters.BooleanFilter(field_name="resolved_at", lookup_expr="isnull")

    class Meta:
        model = Incident
        fields = ["service", "period", "open"]


class _BatchApi(generics.ListAPIView):
    """GET lists the records; POST sends a batch (admins, or an admin's write-scope token)."""

    kind = ""

    def post(self, request):
        body = request.data if isinstance(request.data, dict) else {}
        try:
            record = delivery_api_ingest(
                kind=self.kind, items=body.get("items"), source_slug=body.get("source"), actor=request.user
            )
        except DeliveryImportRejected as exc:
            return Response({"detail": str(exc), "errors": [e.as_dict() for e in exc.errors]}, status=400)
        return Response(DeliveryImportSerializer(record).data)


def _batch_schema(kind: str):
    return extend_schema_view(
        get=extend_schema(summary=f"List delivery {kind}", parameters=[PERIOD_PARAM]),
        post=extend_schema(
            summary=f"Send a batch of {kind} (idempotent on the source's ids; all or nothing)",
            request=batch_request_serializer(kind),
            responses={200: DeliveryImportSerializer, 400: RejectedSerializer},
        ),
    )


@_batch_schema("features")
class FeatureBatchApi(_BatchApi):
    kind = "features"
    serializer_class = FeatureSerializer
    filterset_class = FeatureFilter
    queryset = (
        Feature.objects.select_related("source", "service", "team", "first_deployment")
        .prefetch_related("changes")
        .order_by("-shipped_at", "pk")
    )


@_batch_schema("deployments")
class DeploymentBatchApi(_BatchApi):
    kind = "deployments"
    serializer_class = DeploymentSerializer
    filterset_class = DeploymentFilter
    queryset = (
        Deployment.objects.select_related("source", "service", "environment")
        .prefetch_related("changes")
        .order_by("-deployed_at", "pk")
    )


@_batch_schema("changes")
class ChangeBatchApi(_BatchApi):
    kind = "changes"
    serializer_class = ChangeSerializer
    queryset = Change.objects.select_related("service").order_by("-committed_at", "pk")


@_batch_schema("incidents")
class IncidentBatchApi(_BatchApi):
    kind = "incidents"
    serializer_class = IncidentSerializer
    filterset_class = IncidentFilter
    queryset = Incident.objects.select_related("service", "deployment", "deployment__source", "source").order_by(
        "-started_at", "pk"
    )


@extend_schema_view(
    get=extend_schema(summary="Recent delivery imports (CSV files and API batches)"),
    post=extend_schema(
        summary="Import a delivery CSV file (all or nothing; re-importing it changes nothing)",
        request={"multipart/form-data": CsvImportRequestSerializer},
        responses={200: DeliveryImportSerializer, 400: RejectedSerializer},
    ),
)
class CsvImportApi(generics.ListAPIView):
    serializer_class = DeliveryImportSerializer
    queryset = DeliveryImport.objects.select_related("source", "uploaded_by").order_by("-created_at")
    parser_classes = [parsers.MultiPartParser, parsers.FormParser, parsers.JSONParser]
    read_roles = frozenset({Role.ADMIN})

    def post(self, request):
        data = CsvImportRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        try:
            record = delivery_csv_import(
                kind=data.validated_data["kind"],
                content=upload.read(),
                filename=upload.name,
                source_slug=data.validated_data.get("source"),
                actor=request.user,
            )
        except DeliveryImportRejected as exc:
            return Response({"detail": str(exc), "errors": [e.as_dict() for e in exc.errors]}, status=400)
        return Response(DeliveryImportSerializer(record).data)


class MetricsApi(APIView):
    @extend_schema(
        summary="Cost per feature and the four DORA metrics for a period and scope",
        parameters=[PERIOD_PARAM, OpenApiParameter("team", str), OpenApiParameter("service", str)],
        responses=MetricsSerializer,
    )
    def get(self, request):
        scope = selectors.DeliveryScope(
            team=request.query_params.get("team") or None, service=request.query_params.get("service") or None
        )
        return Response(MetricsSerializer(selectors.delivery_metrics(_period(request), scope)).data)


class GitHubWebhookApi(APIView):
    """GitHub-style deployment webhook: authenticated by its HMAC signature, not by a user."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Receive a GitHub deployment or deployment_status webhook (signed with X-Hub-Signature-256)",
        request=OpenApiTypes.OBJECT,
        responses={
            200: WebhookResponseSerializer,
            400: WebhookResponseSerializer,
            401: WebhookResponseSerializer,
            403: WebhookResponseSerializer,
            404: WebhookResponseSerializer,
        },
        auth=[],
    )
    def post(self, request, slug: str):
        try:
            body = request.body
        except RawPostDataException:  # multipart: the body was already parsed as form data
            detail = "the webhook body must be the raw JSON payload (Content-Type: application/json), not a form"
            return Response({"detail": detail}, status=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE)
        try:
            outcome = github_webhook_receive(
                source_slug=slug,
                event=request.headers.get("X-GitHub-Event", ""),
                delivery_id=request.headers.get("X-GitHub-Delivery", ""),
                signature=request.headers.get("X-Hub-Signature-256"),
                body=body,
            )
        except WebhookError as exc:
            return Response({"detail": str(exc), "errors": exc.errors}, status=exc.status)
        deployment_id = outcome.deployment.external_id if outcome.deployment else None
        return Response({"detail": outcome.detail, "deployment_id": deployment_id}, status=status.HTTP_200_OK)
