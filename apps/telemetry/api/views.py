"""Telemetry over the API: the push endpoint for batch jobs, and the rollups and model telemetry pages' data."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.roles import Role
from apps.catalog.models import Environment, MLModel
from apps.core.periods import Period, PeriodError, parse_period

from .. import selectors
from ..services import PushRejected, telemetry_push
from . import serializers as s

PERIOD_PARAM = OpenApiParameter(
    "period", str, description="YYYY-MM, YYYY-Qn, YYYY-Www, YYYY-MM-DD or a range; default: this month"
)


def query_period(request) -> Period:
    try:
        return parse_period(request.query_params.get("period"), today=timezone.localdate())
    except PeriodError as exc:
        raise ValidationError({"period": str(exc)}) from None


class TelemetryPushApi(APIView):
    """Push telemetry points (batch jobs, business systems, anything without Prometheus).

    Every point is validated; errors name the point's index, the field, the value and what was expected. By
    default one invalid point refuses the whole batch (HTTP 400, nothing stored); with `partial: true` the valid
    points are stored and the invalid ones listed. Idempotent on (series, timestamp): posting the same batch
    twice stores it once (the second answer counts the points as `unchanged`).
    """

    @extend_schema(
        request=s.PushRequestSerializer,
        responses={200: s.PushResponseSerializer, 400: s.PushRejectedSerializer},
        summary="Push a batch of telemetry points",
    )
    def post(self, request):
        body = request.data if isinstance(request.data, dict) else {}
        partial = body.get("partial", False)
        if not isinstance(partial, bool):
            raise ValidationError({"partial": "expected true or false"})
        try:
            result = telemetry_push(points=body.get("points"), partial=partial)
        except PushRejected as exc:
            return Response(
                {"detail": str(exc), "received": exc.received, "errors": [e.as_dict() for e in exc.errors]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(result.as_dict())


class RollupListApi(generics.ListAPIView):
    """Hourly or daily rollups of one metric's series, optionally narrowed by catalog slugs."""

    serializer_class = s.RollupSerializer
    filter_backends: list = []

    @extend_schema(parameters=[s.RollupQuerySerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = s.RollupQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        rows = selectors.series_rollups(metric=q["metric"], start=q["start"], end=q["end"], grain=q["grain"])
        lookups = {
            "model": "series__model__slug",
            "version": "series__version__version",
            "environment": "series__environment__slug",
            "service": "series__service__slug",
            "pool": "series__pool__slug",
            "location": "series__location__code",
        }
        return rows.filter(**{lookup: q[name] for name, lookup in lookups.items() if name in q}).select_related(
            "series__location"
        )


class WorkloadTelemetryApi(APIView):
    """The models page's data: requests, errors, throughput and latency percentiles per model, version and
    environment over a period, with the buckets behind the charts."""

    @extend_schema(
        parameters=[
            PERIOD_PARAM,
            OpenApiParameter("model", str, description="MLModel slug"),
            OpenApiParameter("environment", str, description="Environment slug"),
        ],
        responses=s.WorkloadListSerializer,
    )
    def get(self, request):
        period = query_period(request)
        model = environment = None
        if slug := request.query_params.get("model"):
            model = MLModel.objects.filter(slug=slug).first()
            if model is None:
                raise ValidationError({"model": f"no ML model with slug {slug!r}"})
        if slug := request.query_params.get("environment"):
            environment = Environment.objects.filter(slug=slug).first()
            if environment is None:
                raise ValidationError({"environment": f"no environment with slug {slug!r}"})
        grain = selectors.telemetry_grain(period.start, period.end)
        workloads = selectors.workload_telemetry(
            start=period.start, end=period.end, grain=grain, model=model, environment=environment
        )
        return Response(s.WorkloadListSerializer({"period": period.key, "grain": grain, "workloads": workloads}).data)


class TelemetryPullListApi(generics.ListAPIView):
    """Every pull of every Prometheus source, newest first: points, series, errors and duration (admins)."""

    serializer_class = s.TelemetryPullSerializer
    read_roles = frozenset({Role.ADMIN})
    filterset_fields = ["status", "source"]

    def get_queryset(self):
        return selectors.pull_list()
