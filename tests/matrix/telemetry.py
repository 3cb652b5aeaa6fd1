from . import API_READ, API_READ_ADMIN, API_WRITE_ADMIN, PAGE, Route

MATRIX = [
    # telemetry:models itself is listed in core.py with every KPI page.
    Route("telemetry:models-csv", "get", PAGE),
    Route("telemetry-push", "post", API_WRITE_ADMIN, json=True),  # admin: 400, the empty batch is refused
    Route(
        "telemetry-rollups", "get", API_READ, data={"metric": "gpu_used", "start": "2026-11-01", "end": "2026-11-02"}
    ),
    Route("telemetry-workloads", "get", API_READ),
    Route("telemetry-pulls", "get", API_READ_ADMIN),
]
