from django.views.generic import TemplateView

from apps.accounts.permissions import RoleRequiredMixin

from .selectors import overview_tiles


class OverviewView(RoleRequiredMixin, TemplateView):
    """The landing page: one tile per headline KPI, each linking to its page."""

    template_name = "kpis/overview.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(tiles=overview_tiles(), **kwargs)
