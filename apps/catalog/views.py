from django.views.generic import TemplateView

from apps.accounts.permissions import RoleRequiredMixin

from . import selectors


class CatalogOverviewView(RoleRequiredMixin, TemplateView):
    template_name = "catalog/overview.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            counts=selectors.catalog_counts(),
            services=selectors.service_list(),
            teams=selectors.team_list(),
            models=selectors.model_list(),
            pools=selectors.pool_list(),
            products=selectors.product_list(),
            regions=selectors.region_list(),
            **kwargs,
        )
