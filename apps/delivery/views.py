from dataclasses import dataclass

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views import View
from django.views.generic import TemplateView

from apps.accounts.permissions import AdminRequiredMixin, RoleRequiredMixin
from apps.core.http import request_period
from apps.core.periods import Period

from . import charts, selectors
from .forms import DeliveryImportForm, ScopeForm, column_help
from .kpis import kpi_value
from .models import DeliveryImport, DoraMetric, DoraTierThreshold
from .services import DeliveryImportRejected, delivery_csv_import
from .templatetags.delivery_format import duration, number, percent

SOURCE_NAME = "Delivery data: features, deployments, changes and incidents (API, CSV or deployment webhook)"
SOURCE_HELP = "Teams send deployments by webhook; features and effort come by CSV or the API."
PAGE_SIZE = 50


@dataclass
class DoraTile:
    metric: str
    label: str
    tier: DoraTierThreshold | None
    display: str
    unit: str
    basis: str


def _dora_tiles(now: selectors.DoraPoint, benchmark: selectors.Benchmark | None) -> list[DoraTile]:
    attempts = now.deployments + now.failed_deployments
    shown = {
        DoraMetric.DEPLOYMENT_FREQUENCY: (
            number(now.deployments_per_week),
            "per week",
            f"{now.deployments} successful production deployments",
        ),
        DoraMetric.LEAD_TIME: (duration(now.lead_time_hours), "", f"median of {len(now.lead_times)} changes"),
        DoraMetric.CHANGE_FAILURE_RATE: (
            percent(now.change_failure_rate),
            "",
            f"{now.change_failures} of {attempts} deployments failed or caused an incident",
        ),
        DoraMetric.TIME_TO_RESTORE: (
            duration(now.time_to_restore_hours),
            "",
            f"median of {len(now.restore_times)} incidents resolved; {now.open_incidents} open",
        ),
    }
    tiles = []
    for metric in DoraMetric.values:
        tier = benchmark.tier(metric, now.value(metric)) if benchmark else None
        tiles.append(DoraTile(metric, DoraMetric(metric).label, tier, *shown[metric]))
    return tiles


def _scope_from(request) -> tuple[ScopeForm, selectors.DeliveryScope]:
    form = ScopeForm(request.GET or None)
    if request.GET and not form.is_valid():
        messages.warning(request, "That team or service is not in the catalog; showing every team and service.")
    return form, form.scope()


def _overview_context(request, period: Period, scope: selectors.DeliveryScope) -> dict:
    periods = selectors.trailing_periods(period)
    series = selectors.cost_series(periods, scope, by_team=True)
    kpi = kpi_value(series)
    dora = selectors.dora_series(periods, scope)
    benchmark = selectors.dora_benchmark()
    page = Paginator(selectors.features_shipped(period, scope), PAGE_SIZE).get_page(request.GET.get("page"))
    money_unit = kpi.unit.removesuffix("per feature").strip()
    return {
        "kpi": kpi,
        "cost": series.current,
        "previous_cost": series.previous,
        "dora_tiles": _dora_tiles(dora[-1], benchmark),
        "benchmark": benchmark,
        "features_page": page,
        "feature_rows": selectors.feature_costs(page.object_list, series),
        "currency": money_unit,
        "fig_by_team": charts.cost_per_feature_by_team(series, money_unit),
        "fig_drivers": charts.cost_drivers(series, money_unit),
        "dora_figs": [
            (f"fig-dora-{i}", DoraMetric(m).label, charts.dora_trend(dora, m, benchmark))
            for i, m in enumerate(DoraMetric.values)
        ],
    }


class FunctionalityView(RoleRequiredMixin, TemplateView):
    """Cost per feature shipped by team and what drives it, beside the four DORA metrics with their tiers."""

    template_name = "delivery/overview.html"

    def get_template_names(self):
        if self.request.htmx and self.request.htmx.target == "delivery-body":
            return [f"{self.template_name}#body"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        period = request_period(self.request)
        form, scope = _scope_from(self.request)
        context = {"form": form, "scope": scope, "source_name": SOURCE_NAME, "source_help": SOURCE_HELP}
        if selectors.has_delivery_data():
            context.update(_overview_context(self.request, period, scope))
        return super().get_context_data(**context, **kwargs)


class ActivityView(RoleRequiredMixin, TemplateView):
    """The production deployments and incidents behind the DORA figures of a period."""

    template_name = "delivery/activity.html"

    def get_context_data(self, **kwargs):
        period = request_period(self.request)
        form, scope = _scope_from(self.request)
        deployments = Paginator(selectors.production_deployments(period, scope), PAGE_SIZE)
        incidents = Paginator(selectors.incidents_in(period, scope), PAGE_SIZE)
        return super().get_context_data(
            form=form,
            scope=scope,
            deployments=deployments.get_page(self.request.GET.get("page")),
            incidents=incidents.get_page(self.request.GET.get("incidents_page")),
            **kwargs,
        )


class ImportView(AdminRequiredMixin, View):
    """Admins upload delivery CSV files; a refused file lists every bad value and writes nothing."""

    template_name = "delivery/import.html"

    def _render(self, request, form, rejected: DeliveryImportRejected | None = None):
        context = {
            "form": form,
            "rejected": rejected,
            "imports": DeliveryImport.objects.select_related("source", "uploaded_by")[:20],
            "columns": column_help(),
        }
        return render(request, self.template_name, context)

    def get(self, request):
        return self._render(request, DeliveryImportForm())

    def post(self, request):
        form = DeliveryImportForm(request.POST, request.FILES)
        if not form.is_valid():
            return self._render(request, form)
        upload = form.cleaned_data["file"]
        try:
            record = delivery_csv_import(
                kind=form.cleaned_data["kind"],
                content=upload.read(),
                filename=upload.name,
                source_slug=form.cleaned_data["source"],
                actor=request.user,
            )
        except DeliveryImportRejected as exc:
            return self._render(request, form, rejected=exc)
        messages.success(
            request,
            f"{record.filename}: {record.rows} rows — {record.created} created, {record.updated} updated, "
            f"{record.unchanged} unchanged.",
        )
        return redirect("delivery:import")
