"""The alerts API: every role reads; admins write rules, silences and channels; an alert's owner (or an admin)
acknowledges and reassigns it; batch jobs push distributions for drift rules."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.roles import Role
from apps.core.exceptions import ApplicationError
from apps.core.periods import PeriodError, parse_period
from apps.kpis.registry import KpiFilters

from .. import charts, kpis, selectors, services
from ..distributions import DistributionsRejected, distributions_push
from ..models import Alert, AlertRule, AuditEntry, NotificationChannel, Silence
from ..permissions import can_act_on_alert
from ..preview import rule_preview
from . import serializers as s

ADMIN = frozenset({Role.ADMIN})


class AlertRuleViewSet(viewsets.ModelViewSet):
    """Alert rules. Writes (admins) are validated like the rule form and recorded in the audit trail."""

    serializer_class = s.AlertRuleSerializer
    filterset_fields = ["metric", "severity", "enabled"]

    def get_queryset(self):
        return (
            AlertRule.objects.select_related(
                "model",
                "version",
                "environment",
                "service",
                "pool",
                "location",
                "owner_user",
                "owner_team",
                "escalation_user",
            )
            .prefetch_related("channels")
            .order_by("name")
        )

    def _save(self, serializer):
        data = serializer.validated_data
        try:
            rule = services.rule_save(rule=data["_rule"], channels=data["_channels"], actor=self.request.user)
        except DjangoValidationError as exc:
            s.raise_from_django(exc)
        serializer.instance = rule

    perform_create = perform_update = _save

    def perform_destroy(self, instance):
        services.rule_delete(rule=instance, actor=self.request.user)

    @extend_schema(
        request=s.PreviewRequestSerializer,
        responses=s.PreviewResponseSerializer,
        summary="Replay a rule over the last 7 or 30 days, unsaved",
    )
    @action(detail=False, methods=["post"])
    def preview(self, request):
        body = s.PreviewRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rule = body.validated_data["rule"]["_rule"]
        preview = rule_preview(rule, days=body.validated_data["days"])
        return Response(
            {
                "days": preview.days,
                "error": preview.error,
                "fired": len(preview.fired_episodes),
                "firing_hours": preview.firing_hours,
                "episodes": [
                    {
                        "labels": e.labels,
                        "pending_at": e.pending_at,
                        "fired_at": e.fired_at,
                        "resolved_at": e.resolved_at,
                    }
                    for e in preview.episodes
                ],
                "figure": charts.preview_figure(preview),
            }
        )


class SilenceViewSet(viewsets.ModelViewSet):
    serializer_class = s.SilenceSerializer

    def get_queryset(self):
        return Silence.objects.select_related(
            "rule", "model", "version", "environment", "service", "pool", "location", "created_by"
        )

    def _save(self, serializer):
        try:
            silence = services.silence_save(silence=serializer.validated_data["_silence"], actor=self.request.user)
        except DjangoValidationError as exc:
            s.raise_from_django(exc)
        serializer.instance = silence

    perform_create = perform_update = _save

    def perform_destroy(self, instance):
        services.silence_delete(silence=instance, actor=self.request.user)


class ChannelViewSet(viewsets.ModelViewSet):
    """Notification channels (admins only: URLs of webhooks can be secrets of their own)."""

    serializer_class = s.ChannelSerializer
    read_roles = ADMIN
    queryset = NotificationChannel.objects.order_by("name")

    def _save(self, serializer):
        try:
            channel = services.channel_save(channel=serializer.validated_data["_channel"], actor=self.request.user)
        except DjangoValidationError as exc:
            s.raise_from_django(exc)
        serializer.instance = channel

    perform_create = perform_update = _save

    def perform_destroy(self, instance):
        services.channel_delete(channel=instance, actor=self.request.user)


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Alerts, newest first, with their timeline. ``state``: open (default), pending, firing, resolved or all."""

    lookup_value_regex = r"\d+"
    write_roles = frozenset(Role)  # acknowledging needs the alert's ownership or the admin role (checked below)
    filter_backends: list = []

    def get_serializer_class(self):
        return s.AlertDetailSerializer if self.action == "retrieve" else s.AlertSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=["open", "pending", "firing", "resolved", "all"]),
            OpenApiParameter("severity", str),
            OpenApiParameter("rule", int),
            OpenApiParameter("model", str, description="MLModel slug"),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        if self.action != "list":
            return Alert.objects.select_related("owner_user", "owner_team", "acknowledged_by")
        q = self.request.query_params
        rule = q.get("rule")
        return selectors.alert_list(
            state=q.get("state", "open"),
            severity=q.get("severity", ""),
            rule=int(rule) if rule and rule.isdigit() else None,
            model=q.get("model", ""),
        )

    def _actionable(self, request, pk) -> Alert:
        alert = get_object_or_404(Alert, pk=pk)
        if not can_act_on_alert(request.user, alert):
            raise PermissionDenied("Only an admin or the alert's owner may acknowledge or reassign it.")
        return alert

    @extend_schema(request=s.AcknowledgeSerializer, responses=s.AlertSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        alert = self._actionable(request, pk)
        body = s.AcknowledgeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            alert = services.alert_acknowledge(
                alert=alert, actor=request.user, note=body.validated_data.get("note", "")
            )
        except ApplicationError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(s.AlertSerializer(alert).data)

    @extend_schema(request=s.AssignSerializer, responses=s.AlertSerializer)
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        alert = self._actionable(request, pk)
        body = s.AssignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            alert = services.alert_assign(
                alert=alert, actor=request.user, user=data.get("user"), team=data.get("team"), note=data.get("note", "")
            )
        except ApplicationError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(s.AlertSerializer(alert).data)


class AuditListApi(generics.ListAPIView):
    """The audit trail: every change to rules, silences, channels and alerts, newest first."""

    serializer_class = s.AuditEntrySerializer
    filter_backends: list = []

    @extend_schema(
        parameters=[
            OpenApiParameter("target_type", str, enum=AuditEntry.Target.values),
            OpenApiParameter("target_id", int),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        q = self.request.query_params
        target_id = q.get("target_id")
        return selectors.audit_list(
            target_type=q.get("target_type", ""),
            target_id=int(target_id) if target_id and target_id.isdigit() else None,
        )


class ModelHealthApi(APIView):
    """Each model version by environment with its SLA status, open alerts and figures over a period."""

    @extend_schema(
        parameters=[OpenApiParameter("period", str, description="YYYY-MM etc.; default: this month")],
        responses=s.ModelHealthSerializer,
    )
    def get(self, request):
        try:
            period = parse_period(request.query_params.get("period"), today=timezone.localdate())
        except PeriodError as exc:
            raise ValidationError({"period": str(exc)}) from None
        rows = selectors.model_health(start=period.start, end=period.end)
        sla = kpis.model_sla(period, KpiFilters())
        return Response(
            {
                "period": period.key,
                "model_sla_percent": sla.value,
                "versions_counted": sla.n,
                "note": sla.note,
                "rows": s.HealthRowSerializer(rows, many=True).data,
            }
        )


class DistributionPushApi(APIView):
    """Push prediction or feature distributions (samples, histograms or category counts) for drift rules.

    A batch with any invalid item is refused whole (HTTP 400), each error naming the item's index, the field, the
    value and what was expected. Pushing the same window again replaces it.
    """

    @extend_schema(
        request=s.DistributionPushSerializer,
        responses={200: s.DistributionPushResultSerializer, 400: s.DistributionRejectedSerializer},
        summary="Push distributions for drift rules",
    )
    def post(self, request):
        body = request.data if isinstance(request.data, dict) else {}
        try:
            result = distributions_push(items=body.get("distributions"))
        except DistributionsRejected as exc:
            return Response(
                {"detail": str(exc), "errors": [e.as_dict() for e in exc.errors]}, status=status.HTTP_400_BAD_REQUEST
            )
        return Response({"received": result.received, "stored": result.stored})
