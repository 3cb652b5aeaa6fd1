from apps.core.views import KpiAreaView

BILLING_SOURCE = "Billing sources: FOCUS 1.x, AWS CUR, Azure cost exports and GCP billing exports"


class UnitCostView(KpiAreaView):
    title = "Unit cost of service"
    lead = "What one unit of each service costs: allocated cloud cost divided by the units it delivered."
    source_name = BILLING_SOURCE
    source_help = "An admin adds a billing source (a folder, file pattern or URL of provider exports) under Settings."


class CostExplorerView(KpiAreaView):
    title = "Cost explorer"
    lead = "Total cost by service, environment, provider, account, region or location over time."
    source_name = BILLING_SOURCE
    source_help = UnitCostView.source_help
