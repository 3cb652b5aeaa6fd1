"""Capacity pages: the overview (waste by pool, utilisation heat map, exhaustion, savings), a pool's page, CSV
exports and forecast runs."""

from decimal import Decimal

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View
from django.views.generic import TemplateView

from apps.accounts.permissions import AdminRequiredMixin, RoleRequiredMixin
from apps.catalog.models import CapacityPool
from apps.core.csvexport import csv_download
from apps.core.http import request_period
from apps.kpis.registry import KpiFilters

from . import charts, selectors, services
from .forms import CapacityFilterForm, GrainForm
from .kpis import capacity_waste, currency
from .models import ForecastRun, Grain

SOURCE_NAME = "Telemetry sources (Prometheus query_range, node_exporter, DCGM) and the telemetry push API"
SOURCE_HELP = "An admin adds a telemetry source with CPU, GPU and memory mappings; batch jobs post capacity points."


def _overview(request):
    period = request_period(request)
    chosen = CapacityFilterForm(request.GET or None).selection()
    return period, chosen, selectors.capacity_overview(period, **chosen)


class CapacityOverviewView(RoleRequiredMixin, TemplateView):
    template_name = "capacity/overview.html"

    def get_template_names(self):
        if self.request.htmx and not self.request.htmx.boosted and self.request.htmx.target == "capacity-results":
            return ["capacity/overview.html#results"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        period, chosen, overview = _overview(self.request)
        money = currency()
        capacities = [r.capacity for r in overview.rows]
        return super().get_context_data(
            title="Capacity and waste",
            form=CapacityFilterForm(self.request.GET or None),
            overview=overview,
            kpi=capacity_waste(period, KpiFilters(), **chosen),
            currency=money,
            waste_fig=charts.waste_by_pool(capacities, money),
            heatmap_fig=charts.utilisation_heatmap(overview.heatmap),
            services=selectors.latest_service_forecasts(Grain.DAY),
            runs=[selectors.run_progress(r) for r in selectors.recent_runs()],
            query=self.request.GET.urlencode(),
            source_name=SOURCE_NAME,
            source_help=SOURCE_HELP,
            **kwargs,
        )


class CapacityCsvView(RoleRequiredMixin, View):
    """The overview's pool table, one row per pool."""

    def get(self, request):
        period, _, overview = _overview(request)
        response, writer = csv_download(f"capacity-{period.key}.csv")
        writer.writerow(
            [
                "pool",
                "resource_type",
                "environment",
                "hours",
                "used_unit_hours",
                "provisioned_unit_hours",
                "utilisation",
                "target_utilisation",
                "cost",
                "cost_basis",
                "waste_cost",
                "days_to_exhaustion",
                "exhaustion_date",
                "monthly_saving",
                "backtest_mase",
                "backtest_ratio_to_naive",
                "backtest_coverage",
            ]
        )
        for row in overview.rows:
            c, f = row.capacity, row.forecast
            writer.writerow(
                [
                    c.pool.slug,
                    c.pool.resource_type,
                    c.pool.environment.slug,
                    len(c.hours),
                    round(c.used_unit_hours, 6),
                    round(c.provisioned_unit_hours, 6),
                    _round(c.utilisation),
                    c.pool.target_utilisation,
                    c.cost.amount if c.cost else "",
                    c.cost.basis if c.cost else "",
                    _money(c.waste_cost),
                    _blank(f and f.exhaustion_days),
                    _blank(f and f.exhaustion_date),
                    _money(f and f.monthly_saving),
                    _round(f and f.backtest_mase),
                    _round(f and f.backtest_ratio),
                    _round(f and f.backtest_coverage),
                ]
            )
        return response


def _round(value, places: int = 6):
    return "" if value is None else round(value, places)


def _money(value):
    return "" if value is None else value.quantize(Decimal("0.000001"))


def _blank(value):
    return "" if value is None else value


def _pool_context(request, pool: CapacityPool) -> dict:
    period = request_period(request)
    grain = GrainForm(request.GET or None).selected()
    capacity = selectors.pool_capacity([pool], period.start, period.end)[0]
    forecast = selectors.latest_pool_forecasts([pool], grain).get(pool.pk)
    money = currency()
    return {
        "title": pool.name,
        "pool": pool,
        "period": period,
        "grain": grain,
        "grain_label": Grain(grain).label,
        "capacity": capacity,
        "days": capacity.days(),
        "forecast": forecast,
        "currency": money,
        "others": selectors.secondary_utilisation(pool, period.start, period.end),
        "forecast_fig": charts.pool_forecast(selectors.pool_history(pool, grain), forecast, capacity.unit),
    }


class PoolDetailView(RoleRequiredMixin, TemplateView):
    template_name = "capacity/pool.html"

    def get_template_names(self):
        if self.request.htmx and not self.request.htmx.boosted and self.request.htmx.target == "pool-forecast":
            return ["capacity/pool.html#forecast"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        pool = get_object_or_404(
            CapacityPool.objects.select_related("environment", "location", "service"), slug=self.kwargs["slug"]
        )
        context = _pool_context(self.request, pool)
        context["waste_fig"] = charts.waste_over_time(context["days"], context["currency"])
        return super().get_context_data(**context, **kwargs)


class PoolCsvView(RoleRequiredMixin, View):
    """A pool's days in the period: used and provisioned unit-hours, utilisation, cost and waste cost."""

    def get(self, request, slug: str):
        pool = get_object_or_404(CapacityPool, slug=slug)
        period = request_period(request)
        capacity = selectors.pool_capacity([pool], period.start, period.end)[0]
        response, writer = csv_download(f"capacity-{pool.slug}-{period.key}.csv")
        writer.writerow(
            [
                "day",
                "hours",
                "used_unit_hours",
                "provisioned_unit_hours",
                "utilisation",
                "cost",
                "cost_basis",
                "waste_cost",
            ]
        )
        for day in capacity.days():
            writer.writerow(
                [
                    day.start.date().isoformat(),
                    len(day.hours),
                    round(day.used_unit_hours, 6),
                    round(day.provisioned_unit_hours, 6),
                    _round(day.utilisation),
                    day.cost.amount,
                    day.cost.basis,
                    _money(day.waste_cost),
                ]
            )
        return response


class ForecastRunProgressView(RoleRequiredMixin, View):
    """One run's progress, polled by htmx while the run is active."""

    def get(self, request, pk: int):
        run = get_object_or_404(ForecastRun, pk=pk)
        return render(request, "capacity/_run.html", {"p": selectors.run_progress(run)})


class ForecastRunStartView(AdminRequiredMixin, View):
    """Start a pool-demand and a service-units run now (admins)."""

    def post(self, request):
        grain = GrainForm(request.POST).selected()
        runs = services.forecast_runs_start(grain=grain, requested_by=request.user)
        total = sum(r.series_total for r in runs)
        messages.success(
            request, f"Forecast runs queued at {Grain(grain).label.lower()} grain: {total} series in {len(runs)} runs."
        )
        return redirect("capacity:overview")
