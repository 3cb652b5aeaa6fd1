"""Metric mappings for common model servers and exporters (names from MONITORING.md section 4).

Each preset is a list of mappings: the opsportal metric, a PromQL template and the Prometheus labels that
carry the catalog's identities. They are starting points: label values must equal catalog slugs (or be
translated with a mapping's ``value_aliases``), and exporters without a pool label (DCGM, node_exporter)
need ``fixed_labels = {"pool": "<pool slug>"}``, usually with a selector such as ``{cluster="..."}`` added to
the query. Counters become counts per sample with ``increase(...[{step}])``; latencies are the mean over
``{window}`` in milliseconds.
"""

from typing import Any

Preset = list[dict[str, Any]]


def _mean_latency_ms(metric_sum: str, metric_count: str, by: str, *, factor: str = "1000") -> str:
    return (
        f"{factor} * sum by ({by}) (rate({metric_sum}[{{window}}])) / sum by ({by}) (rate({metric_count}[{{window}}]))"
    )


PRESETS: dict[str, Preset] = {
    "kserve": [
        {
            "metric": "request_count",
            "query": "sum by (model_name, namespace) (increase(request_predict_seconds_count[{step}]))",
            "labels": {"model": "model_name", "environment": "namespace"},
        },
        {
            "metric": "latency_ms",
            "query": _mean_latency_ms(
                "request_predict_seconds_sum", "request_predict_seconds_count", "model_name, namespace"
            ),
            "labels": {"model": "model_name", "environment": "namespace"},
        },
    ],
    "seldon": [
        {
            "metric": "request_count",
            "query": "sum by (model, namespace) (increase(seldon_model_infer_api_seconds_count[{step}]))",
            "labels": {"model": "model", "environment": "namespace"},
        },
        {
            "metric": "error_count",
            "query": 'sum by (model, namespace) (increase(seldon_model_infer_api_seconds_count{code!~"2.."}[{step}]))',
            "labels": {"model": "model", "environment": "namespace"},
        },
        {
            "metric": "latency_ms",
            "query": _mean_latency_ms(
                "seldon_model_infer_api_seconds_sum", "seldon_model_infer_api_seconds_count", "model, namespace"
            ),
            "labels": {"model": "model", "environment": "namespace"},
        },
    ],
    "bentoml": [
        {
            "metric": "request_count",
            "query": "sum by (service_name, service_version) (increase(bentoml_service_request_total[{step}]))",
            "labels": {"model": "service_name", "version": "service_version"},
        },
        {
            "metric": "error_count",
            "query": "sum by (service_name, service_version) "
            '(increase(bentoml_service_request_total{http_response_code=~"5.."}[{step}]))',
            "labels": {"model": "service_name", "version": "service_version"},
        },
        {
            "metric": "latency_ms",
            "query": _mean_latency_ms(
                "bentoml_service_request_duration_seconds_sum",
                "bentoml_service_request_duration_seconds_count",
                "service_name, service_version",
            ),
            "labels": {"model": "service_name", "version": "service_version"},
        },
    ],
    "tf_serving": [
        {
            "metric": "request_count",
            "query": "sum by (model_name) (increase(:tensorflow:serving:request_count[{step}]))",
            "labels": {"model": "model_name"},
        },
        {
            "metric": "error_count",
            "query": 'sum by (model_name) (increase(:tensorflow:serving:request_count{status!="OK"}[{step}]))',
            "labels": {"model": "model_name"},
        },
        {
            # The latency histogram is in microseconds.
            "metric": "latency_ms",
            "query": _mean_latency_ms(
                ":tensorflow:serving:request_latency_sum",
                ":tensorflow:serving:request_latency_count",
                "model_name",
                factor="0.001",
            ),
            "labels": {"model": "model_name"},
        },
    ],
    "triton": [
        {
            "metric": "request_count",
            "query": "sum by (model, version) (increase(nv_inference_request_success[{step}]) "
            "+ increase(nv_inference_request_failure[{step}]))",
            "labels": {"model": "model", "version": "version"},
        },
        {
            "metric": "error_count",
            "query": "sum by (model, version) (increase(nv_inference_request_failure[{step}]))",
            "labels": {"model": "model", "version": "version"},
        },
        {
            # Triton's duration is a cumulative microsecond counter: mean = its rate / the success rate.
            "metric": "latency_ms",
            "query": _mean_latency_ms(
                "nv_inference_request_duration_us", "nv_inference_request_success", "model, version", factor="0.001"
            ),
            "labels": {"model": "model", "version": "version"},
        },
    ],
    "dcgm": [
        {"metric": "gpu_used", "query": "sum(DCGM_FI_DEV_GPU_UTIL) / 100", "labels": {}},
        {"metric": "gpu_provisioned", "query": "count(DCGM_FI_DEV_GPU_UTIL)", "labels": {}},
    ],
    "node_exporter": [
        {"metric": "cpu_used", "query": 'sum(rate(node_cpu_seconds_total{mode!="idle"}[{window}]))', "labels": {}},
        {"metric": "cpu_provisioned", "query": 'count(node_cpu_seconds_total{mode="idle"})', "labels": {}},
        {
            "metric": "memory_used",
            "query": "sum(node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes) / 1073741824",
            "labels": {},
        },
        {"metric": "memory_provisioned", "query": "sum(node_memory_MemTotal_bytes) / 1073741824", "labels": {}},
        {"metric": "nodes_provisioned", "query": "count(node_uname_info)", "labels": {}},
    ],
}
