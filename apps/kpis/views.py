from django.contrib import messages
from django.shortcuts import redirect, render
from django.views import View

from apps.accounts.permissions import AdminRequiredMixin, RoleRequiredMixin
from apps.core.csvexport import csv_response
from apps.core.http import request_period

from .forms import KpiFilterForm
from .registry import KpiFilters
from .selectors import KPI_HEADER, kpi_rows, overview


class OverviewView(RoleRequiredMixin, View):
    """The landing page: one tile per headline KPI, each linking to its page; filters update the tiles."""

    def get(self, request):
        form = KpiFilterForm(request.GET or None)  # unbound, it is the empty form: no filters
        period = request_period(request)
        tiles = overview(period=period, filters=form.filters() if form.is_bound else KpiFilters())
        template = "kpis/overview.html"
        if request.htmx and not request.htmx.boosted and request.htmx.target == "kpi-tiles":
            template += "#tiles"
        return render(request, template, {"tiles": tiles, "filter_form": form})


class OverviewExportView(RoleRequiredMixin, View):
    def get(self, request):
        form = KpiFilterForm(request.GET or None)
        period = request_period(request)
        values = overview(period=period, filters=form.filters() if form.is_bound else KpiFilters())
        return csv_response(
            f"opsportal-kpis-{period.key}.csv",
            ["period", *KPI_HEADER],
            ([period.key, *row] for row in kpi_rows(values)),
        )


class DigestSendView(AdminRequiredMixin, View):
    def post(self, request):
        from .tasks import weekly_digest_task

        weekly_digest_task.delay_on_commit()
        messages.success(request, "The KPI digest is being sent to every subscribed user.")
        return redirect("core:settings")
