from apps.core.views import KpiAreaView


class AlertListView(KpiAreaView):
    title = "Alerts"
    lead = "Model SLA breaches: what is firing, who owns it, and what was acknowledged or silenced."
    source_name = "Alert rules evaluated over model telemetry"
    source_help = "An admin sets thresholds on latency, error rate, accuracy and drift per model."
