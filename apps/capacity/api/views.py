"""Capacity over the API: the same figures as the pages (per pool for a period, a pool's days and forecast) and
forecast runs (admins start them; everyone reads their progress)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.catalog.models import CapacityPool
from apps.telemetry.api.views import PERIOD_PARAM, query_period

from .. import selectors, services
from ..forms import GrainForm
from ..kpis import currency
from ..models import ForecastRun
from . import serializers as s


class PoolCapacityListApi(APIView):
    """Every pool's utilisation, cost, waste cost and latest daily forecast for a period."""

    @extend_schema(
        parameters=[
            PERIOD_PARAM,
            OpenApiParameter("environment", str, description="Environment slug"),
            OpenApiParameter("resource_type", str, enum=CapacityPool.ResourceType.values),
        ],
        responses=s.PoolListSerializer,
        operation_id="v1_capacity_pools_list",
    )
    def get(self, request):
        period = query_period(request)
        overview = selectors.capacity_overview(
            period,
            environment=request.query_params.get("environment", ""),
            resource_type=request.query_params.get("resource_type", ""),
        )
        data = {
            "period": period.key,
            "currency": currency(),
            "waste_cost": overview.waste_total,
            "savings_per_month": overview.savings_total,
            "pools": [{"pool": r.pool, "capacity": r.capacity, "forecast": r.forecast} for r in overview.rows],
        }
        return Response(s.PoolListSerializer(data).data)


class PoolCapacityDetailApi(APIView):
    """One pool: the period's capacity and each day of it, and its latest forecast at ``grain``."""

    @extend_schema(
        parameters=[PERIOD_PARAM, OpenApiParameter("grain", str, enum=["day", "hour"])],
        responses=s.PoolDetailSerializer,
    )
    def get(self, request, slug: str):
        pool = get_object_or_404(CapacityPool.objects.select_related("environment"), slug=slug)
        period = query_period(request)
        grain = GrainForm(request.query_params or None).selected()
        capacity = selectors.pool_capacity([pool], period.start, period.end)[0]
        data = {
            "pool": pool,
            "period": period.key,
            "capacity": capacity,
            "days": capacity.days(),
            "forecast": selectors.latest_pool_forecasts([pool], grain).get(pool.pk),
        }
        return Response(s.PoolDetailSerializer(data).data)


class ForecastRunListApi(generics.ListAPIView):
    """Forecast runs, newest first, with their progress. POST (admins) starts a pool and a service run."""

    serializer_class = s.ForecastRunSerializer

    def get_queryset(self):
        return ForecastRun.objects.all()

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        for run in page if page is not None else []:
            run.progress = selectors.run_progress(run)
        return page

    # The started runs as a plain list (a serializer with many=True would be documented as a paginated page).
    @extend_schema(
        request=s.ForecastRunStartSerializer,
        responses={202: {"type": "array", "items": {"$ref": "#/components/schemas/ForecastRun"}}},
    )
    def post(self, request):
        data = s.ForecastRunStartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        runs = services.forecast_runs_start(grain=data.validated_data["grain"], requested_by=request.user)
        for run in runs:
            run.progress = selectors.run_progress(run)
        return Response(s.ForecastRunSerializer(runs, many=True).data, status=status.HTTP_202_ACCEPTED)


class ForecastRunDetailApi(generics.RetrieveAPIView):
    serializer_class = s.ForecastRunSerializer
    queryset = ForecastRun.objects.all()

    def get_object(self):
        run = super().get_object()
        run.progress = selectors.run_progress(run)
        return run
