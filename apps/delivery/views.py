from apps.core.views import KpiAreaView


class FunctionalityView(KpiAreaView):
    title = "Cost of creating functionality"
    lead = "Engineering labour plus dev and test environment cost per feature shipped, beside the DORA metrics."
    source_name = "Delivery data: features, deployments, changes and incidents (API, CSV or deployment webhook)"
    source_help = "Teams send deployments by webhook; features and effort come by CSV or the API."
