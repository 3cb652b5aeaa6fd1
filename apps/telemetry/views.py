from apps.core.views import KpiAreaView


class ModelTelemetryView(KpiAreaView):
    title = "Models"
    lead = "Latency percentiles, error rate and throughput per model version and environment."
    source_name = "Telemetry sources (KServe, Seldon, BentoML, TF Serving, Triton metrics) and the push API"
    source_help = "An admin adds a telemetry source under Settings; batch jobs post to /api/v1/telemetry/."
