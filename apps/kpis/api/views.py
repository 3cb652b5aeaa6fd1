from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.periods import PeriodError, parse_period

from ..forms import KpiFilterForm
from ..selectors import overview
from .serializers import KpiQuerySerializer, KpiResponseSerializer


class KpiListApi(APIView):
    """Every headline KPI for a period: value, unit, previous value, change, target and RAG.

    The same functions compute the overview's tiles and each KPI's own page.
    """

    @extend_schema(parameters=[KpiQuerySerializer], responses=KpiResponseSerializer, summary="Headline KPIs")
    def get(self, request):
        from django.utils import timezone

        query = KpiQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            period = parse_period(query.validated_data.get("period"), today=timezone.localdate())
        except PeriodError as exc:
            raise serializers.ValidationError({"period": [str(exc)]}) from None
        form = KpiFilterForm({k: v for k, v in query.validated_data.items() if k != "period"})
        if not form.is_valid():
            raise serializers.ValidationError({k: list(v) for k, v in form.errors.items()})
        values = overview(period=period, filters=form.filters())
        payload = {"period": period.key, "period_start": period.start, "period_end": period.end, "kpis": values}
        return Response(KpiResponseSerializer(payload).data)
