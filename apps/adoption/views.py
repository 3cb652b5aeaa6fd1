from apps.core.views import KpiAreaView


class AdoptionOverviewView(KpiAreaView):
    title = "Adoption"
    lead = "Trials, activation, monthly active users, demos, training and NPS per product, against monthly targets."
    source_name = "Product events (event API or CSV import) and NPS survey responses"
    source_help = "Products post events to /api/v1/events/batch/ with an ingestion token."
