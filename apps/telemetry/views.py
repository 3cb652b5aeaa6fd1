"""The model telemetry page: latency percentiles, error rate and throughput per version and environment."""

from django.views import View
from django.views.generic import TemplateView

from apps.accounts.permissions import RoleRequiredMixin
from apps.core.csvexport import csv_download
from apps.core.http import request_period

from . import charts, selectors
from .forms import WorkloadFilterForm
from .models import Rollup

SOURCE_NAME = "Telemetry sources (KServe, Seldon, BentoML, TF Serving, Triton metrics) and the push API"
SOURCE_HELP = "An admin adds a telemetry source under the admin site; batch jobs post to /api/v1/telemetry/."


def _workloads(request):
    period = request_period(request)
    form = WorkloadFilterForm(request.GET or None)
    chosen = form.selection()
    grain = selectors.telemetry_grain(period.start, period.end)
    workloads = selectors.workload_telemetry(start=period.start, end=period.end, grain=grain, **chosen)
    return period, form, chosen, grain, workloads


class ModelTelemetryView(RoleRequiredMixin, TemplateView):
    template_name = "telemetry/models.html"

    def get_template_names(self):
        if self.request.htmx and not self.request.htmx.boosted and self.request.htmx.target == "telemetry-results":
            return ["telemetry/models.html#results"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        _, form, chosen, grain, workloads = _workloads(self.request)
        levels = ("p50", "p95", "p99") if chosen["model"] else ("p95",)
        return super().get_context_data(
            title="Models",
            form=form,
            chosen=chosen,
            grain=grain,
            grain_label=Rollup.Grain(grain).label,
            workloads=workloads,
            latency_fig=charts.latency_figure(workloads, levels=levels),
            error_fig=charts.error_rate_figure(workloads),
            throughput_fig=charts.throughput_figure(workloads),
            sources=selectors.latest_pulls(),
            source_name=SOURCE_NAME,
            source_help=SOURCE_HELP,
            csv_query=self.request.GET.urlencode(),
            **kwargs,
        )


class ModelTelemetryCsvView(RoleRequiredMixin, View):
    """The page's data, one row per model x version x environment x bucket."""

    def get(self, request):
        period, _, _, grain, workloads = _workloads(request)
        response, writer = csv_download(f"model-telemetry-{period.key}.csv")
        writer.writerow(
            [
                "bucket_start",
                "grain",
                "model",
                "version",
                "environment",
                "requests",
                "errors",
                "error_rate",
                "throughput_rps",
                "latency_p50_ms",
                "latency_p95_ms",
                "latency_p99_ms",
            ]
        )
        for w in workloads:
            for b in w.ordered:
                writer.writerow(
                    [
                        b.start.isoformat(),
                        grain,
                        w.key.model_slug,
                        w.key.version,
                        w.key.environment,
                        round(b.requests, 6),
                        round(b.errors, 6),
                        round(b.errors / b.requests, 6) if b.requests else "",
                        round(b.requests / w.seconds_per_bucket, 6),
                        *(round(v, 3) if v is not None else "" for v in (b.p50, b.p95, b.p99)),
                    ]
                )
        return response
