"""The adoption API: event and NPS ingestion, the pages' figures, and targets."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.roles import Role
from apps.core.exceptions import ApplicationError
from apps.core.periods import PeriodError, parse_period
from apps.kpis.models import Target

from .. import reports, selectors, services
from ..metrics import METRICS
from . import serializers as s

EVERY_ROLE = frozenset(Role)
EDITORS = frozenset({Role.PRODUCT_MANAGER, Role.ADMIN})

FILTERS = [
    OpenApiParameter(
        "period",
        str,
        description="YYYY-MM (default: this month), YYYY-Qn, YYYY-Www, YYYY-MM-DD, YYYY or YYYY-MM-DD..YYYY-MM-DD",
    ),
    OpenApiParameter("product", str, description="Product slug (default: all products)"),
    OpenApiParameter("location", str, description="Store or region code"),
    OpenApiParameter("role", str, description="Employee role"),
]


def _items(request, key: str) -> list:
    if not isinstance(request.data, dict) or not isinstance(request.data.get(key), list):
        raise ValidationError({key: [f"the body must be a JSON object with a list {key!r}"]})
    if not request.data[key]:
        raise ValidationError({key: ["the list is empty"]})
    return request.data[key]


def _rejected(errors, noun: str) -> Response:
    count = len({e.index for e in errors})
    return Response(
        {
            "detail": f"{count} {noun}{'s are' if count != 1 else ' is'} invalid; nothing was stored. "
            "Fix or drop them and send the batch again.",
            "errors": [e.as_dict() for e in errors],
        },
        status=status.HTTP_400_BAD_REQUEST,
    )


class EventBatchApi(APIView):
    """Ingest up to 1,000 product events. Idempotent by ``event_id``; all or nothing on invalid events.

    Any role's token with the write scope may post (see the README on ingestion tokens).
    """

    write_roles = EVERY_ROLE

    @extend_schema(
        request=s.EventBatchInSerializer,
        responses={200: s.EventBatchResultSerializer, 400: s.BatchRejectedSerializer},
        summary="Send a batch of product events",
    )
    def post(self, request):
        try:
            result = services.events_ingest(_items(request, "events"))
        except ApplicationError as exc:
            raise ValidationError({"events": [str(exc)]}) from None
        if not result.ok:
            return _rejected(result.errors, "event")
        return Response(
            {"accepted": result.accepted, "duplicates": result.duplicates, "duplicate_ids": result.duplicate_ids}
        )


class NpsResponsesApi(APIView):
    """Record NPS answers given elsewhere (e.g. in a product's own UI); one answer per person and campaign."""

    write_roles = EVERY_ROLE

    @extend_schema(
        request=s.NpsResponsesInSerializer,
        responses={200: s.NpsResponsesResultSerializer, 400: s.BatchRejectedSerializer},
        summary="Send NPS responses",
    )
    def post(self, request):
        try:
            result = services.nps_responses_ingest(_items(request, "responses"))
        except ApplicationError as exc:
            raise ValidationError({"responses": [str(exc)]}) from None
        if result.errors:
            return _rejected(result.errors, "response")
        return Response({"accepted": result.accepted, "duplicates": result.duplicates})


class _FiguresApi(APIView):
    def scope_period(self, request):
        try:
            period = parse_period(request.query_params.get("period"), today=timezone.localdate())
        except PeriodError as exc:
            raise ValidationError({"period": [str(exc)]}) from None
        try:
            scope = selectors.resolve_scope(
                product=request.query_params.get("product"),
                location=request.query_params.get("location"),
                role=request.query_params.get("role"),
            )
        except ApplicationError as exc:
            raise ValidationError({"filters": [str(exc)]}) from None
        return scope, period, timezone.now()


class SummaryApi(_FiguresApi):
    @extend_schema(parameters=FILTERS, responses=s.TileSerializer(many=True), summary="Adoption KPIs (the tiles)")
    def get(self, request):
        scope, period, as_of = self.scope_period(request)
        return Response(reports.summary_rows(selectors.adoption_tiles(scope, period, as_of=as_of)))


class FunnelApi(_FiguresApi):
    @extend_schema(parameters=FILTERS, responses=s.FunnelStepSerializer(many=True), summary="Trial funnel")
    def get(self, request):
        scope, period, _ = self.scope_period(request)
        return Response(reports.funnel_rows(selectors.trial_funnel(scope, period)))


class TrendApi(_FiguresApi):
    @extend_schema(
        parameters=FILTERS, responses=s.TrendPointSerializer(many=True), summary="DAU, rolling MAU, stickiness"
    )
    def get(self, request):
        scope, period, as_of = self.scope_period(request)
        return Response(reports.trend_rows(selectors.daily_trend(scope, period, as_of=as_of)))


class RetentionApi(_FiguresApi):
    @extend_schema(parameters=FILTERS, responses=s.RetentionCellSerializer(many=True), summary="Cohort retention")
    def get(self, request):
        scope, period, as_of = self.scope_period(request)
        return Response(reports.retention_rows(selectors.retention_table(scope, period, as_of=as_of)))


class NpsApi(_FiguresApi):
    @extend_schema(parameters=FILTERS[:2], responses=s.NpsSummarySerializer, summary="NPS with n and 95 % interval")
    def get(self, request):
        scope, period, as_of = self.scope_period(request)
        score = selectors.period_values(scope, [period], as_of=as_of, keys=["nps"])[0].nps
        return Response({**reports.nps_summary(score), "distribution": selectors.nps_distribution(scope, period)})


class BreakdownApi(_FiguresApi):
    @extend_schema(
        parameters=[
            *FILTERS,
            OpenApiParameter("by", str, enum=list(selectors.BREAKDOWNS), description="store (default), region, role"),
            OpenApiParameter("sort", str, description="A metric key or name, '-' for descending (default -mau)"),
        ],
        responses=s.BreakdownRowSerializer(many=True),
        summary="Adoption per store, region or role",
    )
    def get(self, request):
        scope, period, as_of = self.scope_period(request)
        by = request.query_params.get("by", "store")
        if by not in selectors.BREAKDOWNS:
            raise ValidationError({"by": [f"one of {', '.join(selectors.BREAKDOWNS)}"]})
        try:
            rows = selectors.breakdown_rows(
                scope, period, by=by, sort=request.query_params.get("sort", "-mau"), as_of=as_of
            )
        except ApplicationError as exc:
            raise ValidationError({"sort": [str(exc)]}) from None
        return Response(reports.breakdown_export_rows(selectors.label_breakdown(list(rows), by=by)))


class TargetViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Monthly targets of adoption KPIs. Product managers change those of their own products; admins all;
    executives read."""

    serializer_class = s.TargetSerializer
    write_roles = EDITORS
    queryset = Target.objects.filter(kpi__in=list(METRICS), service__isnull=True).select_related(
        "product", "created_by"
    )
    filterset_fields = ["kpi", "month", "product__slug"]

    def _save(self, serializer, target=None):
        data = serializer.validated_data
        try:
            return services.adoption_target_set(
                actor=self.request.user,
                target=target,
                kpi=data.get("kpi", target.kpi if target else None),
                product=data.get("product", target.product if target else None),
                month=data.get("month", target.month if target else None),
                value=data.get("value", target.value if target else None),
                direction=data.get("direction", target.direction if target else None),
            )
        except ApplicationError as exc:
            raise ValidationError({"detail": str(exc)}) from None

    def perform_create(self, serializer):
        serializer.instance = self._save(serializer)

    def perform_update(self, serializer):
        serializer.instance = self._save(serializer, target=serializer.instance)

    def perform_destroy(self, instance):
        services.adoption_target_delete(actor=self.request.user, target=instance)
