"""Billing API: sources, imports (with upload), allocation rules, units of service, unit costs, costs, anomalies.

Every role reads; only admins write (RolePermission's default). Reports call the same functions as the
pages, so the API and the pages show the same numbers.
"""

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.catalog.models import Service
from apps.core.exceptions import ApplicationError, QueueUnavailable

from .. import anomalies, reports, services
from ..models import AllocationRule, BillingImport, BillingSource, Reallocation, UnitVolume
from . import serializers as s

MAX_UNIT_ITEMS = 20_000


@extend_schema_view(
    list=extend_schema(summary="Billing sources with their pull status"),
    create=extend_schema(summary="Add a billing source (admins)"),
    retrieve=extend_schema(summary="One billing source"),
    update=extend_schema(summary="Change a billing source (admins)"),
    partial_update=extend_schema(summary="Change some fields of a billing source (admins)"),
)
class BillingSourceViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    queryset = BillingSource.objects.all()
    serializer_class = s.BillingSourceSerializer
    filterset_fields = ["status", "enabled"]

    @extend_schema(
        summary="Pull the source now (admins)",
        request=None,
        responses={202: s.PullQueuedSerializer, 400: OpenApiResponse(description="The source has no location.")},
    )
    @action(detail=True, methods=["post"])
    def pull(self, request, pk=None):
        source = self.get_object()
        if not source.location:
            return Response(
                {"detail": f"{source.name} has no location to pull from; it takes uploads only."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        from ..tasks import billing_pull_source_task

        billing_pull_source_task.delay_on_commit(source.pk)
        detail = f"a pull of {source.name} is queued"
        return Response({"source": source.pk, "queued": True, "detail": detail}, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(summary="Imports, newest first"),
    retrieve=extend_schema(summary="One import with its progress, totals, errors and conformance warnings"),
)
class BillingImportViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    queryset = BillingImport.objects.select_related("source", "started_by").order_by("-created_at")
    serializer_class = s.BillingImportSerializer
    filterset_fields = ["source", "status", "trigger"]
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        summary="Upload a billing file (admins); a worker imports it",
        request={"multipart/form-data": s.BillingUploadSerializer},
        responses={202: s.BillingImportSerializer},
    )
    def create(self, request, *args, **kwargs):
        upload = s.BillingUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        try:
            billing_import = services.billing_import_upload(
                source=data["source"],
                stream=data["file"],
                filename=data["file"].name,
                user=request.user,
                fmt=data.get("format") or None,
            )
        except QueueUnavailable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        except ApplicationError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(s.BillingImportSerializer(billing_import).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(summary="Allocation rules in the order they run"),
    create=extend_schema(
        summary="Add a rule (admins); a worker then re-allocates every stored period",
        description="The response's `reallocation` is that re-allocation: follow it at billing/reallocations/{id}/.",
        responses={201: s.AllocationRuleChangeSerializer},
    ),
    retrieve=extend_schema(summary="One allocation rule"),
    update=extend_schema(
        summary="Change a rule (admins); a worker then re-allocates every stored period",
        responses={200: s.AllocationRuleChangeSerializer},
    ),
    partial_update=extend_schema(
        summary="Change some fields of a rule (admins); a worker then re-allocates every stored period",
        responses={200: s.AllocationRuleChangeSerializer},
    ),
    destroy=extend_schema(summary="Delete a rule (admins); a worker then re-allocates every stored period"),
)
class AllocationRuleViewSet(viewsets.ModelViewSet):
    queryset = AllocationRule.objects.select_related("service", "environment", "location").order_by("order", "pk")
    serializer_class = s.AllocationRuleSerializer

    def perform_create(self, serializer):
        serializer.instance = services.allocation_rule_save(rule=serializer.rule, user=self.request.user)

    def perform_update(self, serializer):
        serializer.instance = services.allocation_rule_save(rule=serializer.rule, user=self.request.user)

    def perform_destroy(self, instance):
        services.allocation_rule_delete(rule=instance, user=self.request.user)

    def finalize_response(self, request, response, *args, **kwargs):
        # A saved rule's answer says which re-allocation takes it in.
        if self.action in ("create", "update", "partial_update") and response.status_code in (200, 201):
            current = reports.reallocation_current()
            response.data["reallocation"] = s.ReallocationSerializer(current).data if current else None
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        summary="What a rule would claim, without saving it (admins)",
        request=s.AllocationRuleSerializer,
        responses={200: s.RulePreviewSerializer},
    )
    @action(detail=False, methods=["post"])
    def preview(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(s.RulePreviewSerializer(reports.rule_preview(serializer.rule)).data)


@extend_schema_view(
    list=extend_schema(summary="Re-allocations after rule changes, newest first"),
    retrieve=extend_schema(summary="One re-allocation with its progress (billing periods done of all)"),
)
class ReallocationViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Reallocation.objects.select_related("requested_by").order_by("-created_at", "-pk")
    serializer_class = s.ReallocationSerializer
    filterset_fields = ["status"]

    @extend_schema(
        summary="Re-allocate every stored period with the current rules (admins); a worker does it",
        request=None,
        responses={202: s.ReallocationSerializer},
    )
    def create(self, request, *args, **kwargs):
        reallocation = services.allocation_rules_changed(reason="re-allocation asked for by the API", user=request.user)
        return Response(s.ReallocationSerializer(reallocation).data, status=status.HTTP_202_ACCEPTED)


class UnitVolumesView(GenericAPIView):
    """Units of service per day: read them, or send a list of {service, date, units} (admins)."""

    queryset = UnitVolume.objects.select_related("service").order_by("service__slug", "day")
    serializer_class = s.UnitVolumeSerializer
    filterset_fields = ["service__slug", "day", "source"]

    @extend_schema(summary="Units of service per day", responses=s.UnitVolumeSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.UnitVolumeSerializer(page, many=True).data)

    @extend_schema(
        summary="Store units of service (admins): all items valid or none stored",
        request=s.UnitVolumeItemSerializer(many=True),
        responses={200: s.UnitVolumesStoredSerializer, 400: s.UnitVolumesRejectedSerializer},
    )
    def post(self, request):
        items = request.data
        if not isinstance(items, list) or not items:
            detail = "expected a non-empty JSON list of {service, date, units} objects"
            return Response({"detail": detail, "errors": []}, status=status.HTTP_400_BAD_REQUEST)
        if len(items) > MAX_UNIT_ITEMS:
            detail = f"{len(items):,} items; send at most {MAX_UNIT_ITEMS:,} per request"
            return Response({"detail": detail, "errors": []}, status=status.HTTP_400_BAD_REQUEST)
        known = dict(Service.objects.values_list("slug", "pk"))
        volumes, errors, first_seen = {}, [], {}
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                errors.append({"index": index, "errors": {"item": ["expected an object with service, date and units"]}})
                continue
            serializer = s.UnitVolumeItemSerializer(data=item, context={"services": known})
            if not serializer.is_valid():
                errors.append({"index": index, "errors": serializer.errors})
                continue
            data = serializer.validated_data
            key = (known[data["service"]], data["date"])
            if key in first_seen:
                message = f"{data['service']} on {data['date']} is also item {first_seen[key]}; send each day once"
                errors.append({"index": index, "errors": {"date": [message]}})
                continue
            first_seen[key] = index
            volumes[key] = data["units"]
        if errors:
            detail = f"{len(errors)} of {len(items)} items are invalid; nothing was stored"
            return Response({"detail": detail, "errors": errors}, status=status.HTTP_400_BAD_REQUEST)
        with transaction.atomic():
            result = services.unit_volumes_store(volumes=volumes, source="import")
        return Response({"rows": result.rows, "created": result.created, "updated": result.updated})


def _query(serializer_class, request):
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query


class UnitCostsView(APIView):
    @extend_schema(
        summary="Unit cost per service for a period (the unit cost page's numbers)",
        parameters=[s.PeriodQuerySerializer],
        responses=s.UnitCostReportSerializer,
    )
    def get(self, request):
        query = _query(s.PeriodQuerySerializer, request)
        report = reports.unit_cost_report(query.validated_period(), cost=query.validated_data["cost"])
        return Response(s.UnitCostReportSerializer(report).data)


class CostsView(APIView):
    @extend_schema(
        summary="Total cost by a dimension per day, week or month (the cost explorer's numbers)",
        parameters=[s.CostsQuerySerializer],
        responses=s.CostsSerializer,
    )
    def get(self, request):
        query = _query(s.CostsQuerySerializer, request)
        data, period = query.validated_data, query.validated_period()
        explorer = reports.explore(
            period.start,
            period.end,
            group_by=data["group_by"],
            grain=data.get("grain") or reports.default_grain(period),
            cost=data["cost"],
            filters=reports.CostFilters(
                service=data.get("service"), environment=data.get("environment"), provider=data.get("provider")
            ),
        )
        return Response(
            s.CostsSerializer(
                {
                    "period": period.key,
                    "start": explorer.start,
                    "end": explorer.end,
                    "group_by": explorer.group_by,
                    "grain": explorer.grain,
                    "cost": explorer.cost,
                    "currency": explorer.currency,
                    "total": explorer.total,
                    "buckets": explorer.buckets,
                    "series": explorer.series,
                }
            ).data
        )


class AnomaliesView(APIView):
    @extend_schema(
        summary="Cost anomalies per service and sub-account, newest first (as on the unit cost page)",
        parameters=[s.AnomaliesQuerySerializer],
        responses=s.AnomaliesSerializer,
    )
    def get(self, request):
        query = _query(s.AnomaliesQuerySerializer, request)
        data, period = query.validated_data, query.validated_period()
        dimension = data["dimension"]
        min_excess = data.get("min_excess")
        if min_excess is None:
            min_excess = anomalies.MIN_EXCESS
        min_percent = data.get("min_percent")
        if min_percent is None:
            min_percent = anomalies.MIN_RATIO * 100
        found = anomalies.cost_anomalies(
            period.start,
            period.end,
            cost=data["cost"],
            dimensions=tuple(anomalies.DIMENSIONS) if dimension == "all" else (dimension,),
            service=data.get("service"),
            min_excess=min_excess,
            min_ratio=min_percent / 100,
        )
        payload = {
            "period": period.key,
            "cost": data["cost"],
            "min_excess": min_excess,
            "min_percent": min_percent,
            "anomalies": found,
        }
        return Response(s.AnomaliesSerializer(payload).data)
