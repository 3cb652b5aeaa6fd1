from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.generic import TemplateView

from apps.accounts.permissions import AdminRequiredMixin, RoleRequiredMixin

from . import selectors
from .health import check_health


@require_GET
@never_cache
@login_not_required
def healthz(request):
    """Liveness and readiness: 200 when the database and the broker answer, 503 naming what failed."""
    report = check_health()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


class KpiAreaView(RoleRequiredMixin, TemplateView):
    """A KPI page. Until its data source delivers, it says which source feeds it and who configures it."""

    template_name = "core/kpi_area.html"
    title = ""
    lead = ""
    source_name = ""
    source_help = ""

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            title=self.title, lead=self.lead, source_name=self.source_name, source_help=self.source_help, **kwargs
        )


class SettingsView(AdminRequiredMixin, TemplateView):
    template_name = "core/settings.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            schedules=selectors.schedule_list(), heartbeats=selectors.worker_heartbeats(), **kwargs
        )
