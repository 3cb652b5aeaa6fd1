from apps.core.views import KpiAreaView


class CapacityOverviewView(KpiAreaView):
    title = "Capacity and waste"
    lead = "Provisioned versus used capacity per pool, the cost of what sits idle, and when pools run out."
    source_name = "Telemetry sources (Prometheus query_range, node_exporter, DCGM) and the telemetry push API"
    source_help = "An admin adds a telemetry source with CPU, GPU and memory mappings under Settings."
