"""Billing pages: unit cost, the cost explorer, billing sources and imports, allocation rules, units of service.

Views parse input, call one service or report function and render; every figure comes from
``reports`` (rollups, aggregated in the database) and every write from ``services``.
"""

from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.timezone import localdate
from django.views import View
from django.views.generic import TemplateView

from apps.accounts.permissions import AdminRequiredMixin, RoleRequiredMixin
from apps.core.csvexport import csv_download
from apps.core.exceptions import ApplicationError
from apps.core.http import request_period
from apps.kpis.registry import KpiFilters

from . import anomalies, charts, importer, kpis, reports, services
from .forms import (
    AllocationRuleForm,
    BillingSourceForm,
    BillingUploadForm,
    ExplorerForm,
    UnitCostFilterForm,
    UnitVolumeUploadForm,
)
from .models import AllocationRule, BillingImport, BillingSource

BILLING_SOURCE = "Billing sources: FOCUS 1.x, AWS CUR, Azure cost exports and GCP billing exports"
SOURCE_HELP = (
    "An admin adds a billing source (a folder, file pattern or URL of provider exports) under Billing sources."
)
PAGE_SIZE = 25
ANOMALIES_SHOWN = 50


def _empty_state() -> dict:
    return {"source_name": BILLING_SOURCE, "source_help": SOURCE_HELP}


def _decimal_text(value: Decimal | None) -> str:
    if value is None:
        return ""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# --- Unit cost ---------------------------------------------------------------------------------------------


def unit_cost_context(request, *, cost: str, trend_service: str) -> dict:
    period = request_period(request)
    report = reports.unit_cost_report(period, cost=cost)
    context = {
        "report": report,
        "cost": cost,
        "cost_label": dict(reports.COST_CHOICES)[cost],
        "to_date": period.start <= localdate() < period.end,
        "reallocation": reports.reallocation_current(),
        **_empty_state(),
    }
    if not report.has_data:
        return context
    monthly = reports.monthly_figures(reports.trailing_months(period, 12), cost=cost)
    chosen = next((r for r in report.rows if r.service.slug == trend_service), None)
    if chosen is None and report.rows:
        chosen = report.rows[0]
    context["kpi"] = kpis.unit_cost_value(report, monthly, service=None, notes=[])
    context["anomalies"] = anomalies.cost_anomalies(period.start, period.end, cost=cost)[:ANOMALIES_SHOWN]
    if chosen is not None:
        service = chosen.service
        context["trend_row"] = chosen
        context["fig_trend"] = charts.unit_cost_trend(
            monthly.months, monthly.points(service.pk), service, report.currency
        )
        filters = reports.CostFilters(service=service.slug)
        context["breakdowns"] = [
            (
                dim,
                reports.DIMENSIONS[dim].label,
                reports.cost_breakdown(period.start, period.end, dim, cost=cost, filters=filters),
            )
            for dim in ("environment", "provider", "location")
        ]
    context["fig_unit_costs"] = charts.unit_cost_changes(report)
    return context


class UnitCostView(RoleRequiredMixin, TemplateView):
    """Unit cost per service with its change, target, trend and breakdowns, the unallocated share and anomalies."""

    template_name = "billing/unit_cost.html"

    def get_template_names(self):
        if self.request.htmx and self.request.htmx.target == "unit-cost-body":
            return [f"{self.template_name}#body"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        form = UnitCostFilterForm(self.request.GET or None)
        cost, service = form.value("cost", "effective"), form.value("service")
        return super().get_context_data(
            form=form, **unit_cost_context(self.request, cost=cost, trend_service=service), **kwargs
        )


class UnitCostExportView(RoleRequiredMixin, View):
    """The unit cost table as CSV, every digit the database holds."""

    def get(self, request):
        form = UnitCostFilterForm(request.GET or None)
        cost = form.value("cost", "effective")
        period = request_period(request)
        report = reports.unit_cost_report(period, cost=cost)
        response, out = csv_download(f"unit-cost-{period.key}.csv")
        out.writerow(
            [
                "period",
                "service",
                "unit",
                "currency",
                "cost_type",
                "allocated_cost",
                "direct_cost",
                "shared_cost",
                "units",
                "units_source",
                "unit_cost",
                "previous_unit_cost",
                "unit_cost_change_percent",
                "target",
            ]
        )
        for row in report.rows:
            out.writerow(
                [
                    period.key,
                    row.service.slug,
                    row.service.unit_name,
                    report.currency,
                    reports.COST_FIELDS[cost],
                    _decimal_text(row.current.cost),
                    _decimal_text(row.current.direct),
                    _decimal_text(row.current.shared),
                    _decimal_text(row.current.units),
                    row.current.units_source,
                    _decimal_text(row.unit_cost),
                    _decimal_text(row.previous_unit_cost),
                    _decimal_text(None if row.change is None else (row.change * 100).quantize(Decimal("0.01"))),
                    _decimal_text(row.target),
                ]
            )
        totals = report.totals
        out.writerow(
            [
                period.key,
                "(unallocated)",
                "",
                report.currency,
                reports.COST_FIELDS[cost],
                _decimal_text(totals.unallocated),
            ]
        )
        out.writerow(
            [period.key, "(all cost)", "", report.currency, reports.COST_FIELDS[cost], _decimal_text(totals.total)]
        )
        return response


# --- Cost explorer -------------------------------------------------------------------------------------------


def _explorer_params(request) -> tuple[ExplorerForm, dict]:
    period = request_period(request)
    form = ExplorerForm(request.GET or None, providers=reports.providers())
    valid = form.is_valid() if request.GET else False
    data = form.cleaned_data if valid else {}
    if request.GET and not valid:
        messages.warning(
            request,
            "Some filters were not understood and were reset: "
            + "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()),
        )
    params = {
        "group_by": data.get("group_by") or "service",
        "grain": data.get("grain") or reports.default_grain(period),
        "cost": data.get("cost") or "effective",
        "filters": reports.CostFilters(
            service=data.get("service") or None,
            environment=data.get("environment") or None,
            provider=data.get("provider") or None,
        ),
    }
    return form, params


class CostExplorerView(RoleRequiredMixin, TemplateView):
    """Total cost by any dimension over time, with htmx filters."""

    template_name = "billing/explorer.html"

    def get_template_names(self):
        if self.request.htmx and self.request.htmx.target == "explorer-results":
            return [f"{self.template_name}#results"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        period = request_period(self.request)
        form, params = _explorer_params(self.request)
        context = {"form": form, "params": params, **_empty_state()}
        if reports.has_cost_data():
            explorer = reports.explore(period.start, period.end, **params)
            context["explorer"] = explorer
            context["kpi"] = kpis.cloud_cost(period, KpiFilters())
            context["fig_explorer"] = charts.explorer_bars(explorer)
            context["grain_label"] = reports.GRAINS[params["grain"]]
            context["group_label"] = reports.DIMENSIONS[params["group_by"]].label
        return super().get_context_data(**context, **kwargs)


class CostExplorerExportView(RoleRequiredMixin, View):
    def get(self, request):
        period = request_period(request)
        _, params = _explorer_params(request)
        explorer = reports.explore(period.start, period.end, **params)
        response, out = csv_download(f"cost-{params['group_by']}-{period.key}.csv")
        out.writerow([params["grain"], params["group_by"], "group", "currency", reports.COST_FIELDS[params["cost"]]])
        for series in explorer.series:
            for bucket, value in zip(explorer.buckets, series.values, strict=True):
                if value:
                    out.writerow(
                        [bucket.isoformat(), series.key, series.label, explorer.currency, _decimal_text(value)]
                    )
        return response


# --- Billing sources and imports ----------------------------------------------------------------------------


class SourceListView(RoleRequiredMixin, TemplateView):
    template_name = "billing/sources.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(sources=reports.source_list(), **kwargs)


class SourceFormView(AdminRequiredMixin, View):
    """Create (no pk) or edit a billing source."""

    template_name = "billing/source_form.html"

    def _source(self, pk):
        return get_object_or_404(BillingSource, pk=pk) if pk else None

    def get(self, request, pk=None):
        source = self._source(pk)
        return render(request, self.template_name, {"form": BillingSourceForm(instance=source), "source": source})

    def post(self, request, pk=None):
        source = self._source(pk)
        form = BillingSourceForm(request.POST, instance=source)
        if not form.is_valid():
            return render(request, self.template_name, {"form": form, "source": source})
        source = form.save()
        messages.success(request, f"Billing source {source.name} saved.")
        return redirect("billing:source-detail", pk=source.pk)


class SourceDetailView(RoleRequiredMixin, TemplateView):
    template_name = "billing/source_detail.html"

    def get_context_data(self, pk, **kwargs):
        source = get_object_or_404(reports.source_list(), pk=pk)
        page = Paginator(reports.source_imports(source), PAGE_SIZE).get_page(self.request.GET.get("page"))
        return super().get_context_data(source=source, imports=page, **kwargs)


class SourcePullView(AdminRequiredMixin, View):
    def post(self, request, pk):
        source = get_object_or_404(BillingSource, pk=pk)
        if not source.location:
            messages.error(request, f"{source.name} has no location to pull from; it takes uploads only.")
            return redirect("billing:source-detail", pk=pk)
        from .tasks import billing_pull_source_task

        billing_pull_source_task.delay_on_commit(source.pk)
        messages.success(request, f"A pull of {source.name} is queued; new files appear below as they are imported.")
        return redirect("billing:source-detail", pk=pk)


class SourceUploadView(AdminRequiredMixin, View):
    template_name = "billing/source_upload.html"

    def get(self, request, pk):
        source = get_object_or_404(BillingSource, pk=pk)
        return render(request, self.template_name, {"source": source, "form": BillingUploadForm()})

    def post(self, request, pk):
        source = get_object_or_404(BillingSource, pk=pk)
        form = BillingUploadForm(request.POST, request.FILES)
        if not form.is_valid():
            return render(request, self.template_name, {"source": source, "form": form})
        upload = form.cleaned_data["file"]
        try:
            billing_import = services.billing_import_upload(
                source=source,
                stream=upload,
                filename=upload.name,
                user=request.user,
                fmt=form.cleaned_data["format"] or None,
            )
        except ApplicationError as exc:
            form.add_error(None, str(exc))
            return render(request, self.template_name, {"source": source, "form": form})
        messages.success(request, f"{upload.name} is stored and queued; a worker imports it now.")
        return redirect("billing:import-detail", pk=billing_import.pk)


def _import_context(billing_import: BillingImport) -> dict:
    return {"imp": billing_import, "progress": importer.import_progress(billing_import)}


class ImportDetailView(RoleRequiredMixin, TemplateView):
    """One import: its progress while a worker runs it, then its totals, errors and conformance warnings."""

    template_name = "billing/import_detail.html"

    def get_context_data(self, pk, **kwargs):
        billing_import = get_object_or_404(BillingImport.objects.select_related("source", "started_by"), pk=pk)
        return super().get_context_data(**_import_context(billing_import), **kwargs)


class ImportProgressView(RoleRequiredMixin, View):
    """The fragment the import page polls; it stops polling itself once the import has finished."""

    def get(self, request, pk):
        billing_import = get_object_or_404(BillingImport.objects.select_related("source", "started_by"), pk=pk)
        return render(request, "billing/import_detail.html#status", _import_context(billing_import))


# --- Allocation rules ---------------------------------------------------------------------------------------


class RuleListView(RoleRequiredMixin, TemplateView):
    template_name = "billing/rules.html"

    def get_context_data(self, **kwargs):
        period = request_period(self.request)
        rules = AllocationRule.objects.select_related("service", "environment", "location").order_by("order", "pk")
        return super().get_context_data(
            rules=rules,
            totals=reports.cost_totals(period.start, period.end),
            reallocation=reports.reallocation_current(),
            **kwargs,
        )


class ReallocationStatusView(RoleRequiredMixin, View):
    """The fragment the rules page polls while cost is re-allocated; it stops polling once that is done."""

    def get(self, request):
        return render(request, "billing/rules.html#reallocation", {"reallocation": reports.reallocation_current()})


class ReallocateView(AdminRequiredMixin, View):
    """Re-allocate every stored period with the current rules (after a failed or lost re-allocation)."""

    def post(self, request):
        services.allocation_rules_changed(reason="re-allocation asked for on the rules page", user=request.user)
        messages.success(request, "A worker re-allocates the stored cost (progress below).")
        return redirect("billing:rules")


class RuleFormView(AdminRequiredMixin, View):
    """Create or edit a rule. "Preview" shows what it would claim without saving (htmx or a plain submit)."""

    template_name = "billing/rule_form.html"

    def _rule(self, pk):
        return get_object_or_404(AllocationRule, pk=pk) if pk else None

    def get(self, request, pk=None):
        rule = self._rule(pk)
        return render(request, self.template_name, {"form": AllocationRuleForm(instance=rule), "rule": rule})

    def post(self, request, pk=None):
        rule = self._rule(pk)
        form = AllocationRuleForm(request.POST, instance=rule)
        context = {"form": form, "rule": rule}
        if not form.is_valid():
            return render(request, self.template_name, context)
        if request.POST.get("action") == "preview":
            context["preview"] = reports.rule_preview(form.instance)
            return render(request, self.template_name, context)
        try:
            saved = services.allocation_rule_save(rule=form.instance, user=request.user)
        except ApplicationError as exc:
            form.add_error(None, str(exc))
            return render(request, self.template_name, context)
        messages.success(request, f"Rule {saved.name} saved; a worker re-allocates the stored cost (progress below).")
        return redirect("billing:rules")


class RulePreviewView(AdminRequiredMixin, View):
    """The htmx preview: what the rule in the form would claim, or what is wrong with it. Never saves."""

    def post(self, request):
        pk = request.POST.get("rule_id") or None
        rule = get_object_or_404(AllocationRule, pk=pk) if pk else None
        form = AllocationRuleForm(request.POST, instance=rule)
        context = {"form": form, "rule": rule}
        if form.is_valid():
            context["preview"] = reports.rule_preview(form.instance)
        return render(request, "billing/rule_form.html#preview", context)


class RuleDeleteView(AdminRequiredMixin, View):
    def post(self, request, pk):
        rule = get_object_or_404(AllocationRule, pk=pk)
        name = rule.name
        services.allocation_rule_delete(rule=rule, user=request.user)
        messages.success(request, f"Rule {name} deleted; a worker re-allocates the stored cost (progress below).")
        if request.htmx:  # the confirmed htmx delete: load the list page again
            return HttpResponse(headers={"HX-Redirect": reverse("billing:rules")})
        return redirect("billing:rules")


# --- Units of service ----------------------------------------------------------------------------------------


class UnitsView(RoleRequiredMixin, View):
    """Units delivered per service in the period; admins upload the service,date,units CSV here."""

    template_name = "billing/units.html"

    def _render(self, request, form, rejected: str = ""):
        period = request_period(request)
        return render(
            request,
            self.template_name,
            {
                "form": form,
                "rejected": rejected.split("; ") if rejected else [],
                "summary": reports.unit_summary(period),
            },
        )

    def get(self, request):
        return self._render(request, UnitVolumeUploadForm())

    def post(self, request):
        if not request.user.is_portal_admin:
            raise PermissionDenied("Only admins import units of service.")
        form = UnitVolumeUploadForm(request.POST, request.FILES)
        if not form.is_valid():
            return self._render(request, form)
        upload = form.cleaned_data["file"]
        try:
            result = services.unit_volumes_import_csv(stream=upload, filename=upload.name)
        except ApplicationError as exc:
            return self._render(request, form, rejected=str(exc))
        messages.success(
            request,
            f"{upload.name}: {result.rows:,} days imported ({result.created:,} new, {result.updated:,} changed).",
        )
        return redirect(reverse("billing:units"))
