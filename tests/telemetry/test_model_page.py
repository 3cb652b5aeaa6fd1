"""The model telemetry page, its CSV export and API: latency percentiles, error rate and throughput per version
and environment, checked against hand-computed values."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from apps.telemetry.services import telemetry_push
from tests.factories import EnvironmentFactory
from tests.telemetry.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db
DAY = datetime(2026, 11, 2, tzinfo=UTC)
PERIOD = "2026-11-02"


@pytest.fixture
def telemetry():
    EnvironmentFactory(slug="prod")
    v1 = ModelVersionFactory(model__slug="ranker", model__name="Ranker", version="1.0")
    ModelVersionFactory(model=v1.model, version="2.0")
    ModelVersionFactory(model__slug="other", model__name="Other", version="1")
    points = []
    for version, latencies, requests, errors in (("1.0", [10, 20, 30, 40, 100], 7200, 72), ("2.0", [50], 3600, 0)):
        points += [
            {
                "metric": "latency_ms",
                "model": "ranker",
                "version": version,
                "environment": "prod",
                "timestamp": (DAY + timedelta(hours=9, minutes=i)).isoformat(),
                "value": v,
            }
            for i, v in enumerate(latencies)
        ]
        points += [
            {
                "metric": "request_count",
                "model": "ranker",
                "version": version,
                "environment": "prod",
                "timestamp": (DAY + timedelta(hours=9)).isoformat(),
                "value": requests,
            },
            {
                "metric": "error_count",
                "model": "ranker",
                "version": version,
                "environment": "prod",
                "timestamp": (DAY + timedelta(hours=9)).isoformat(),
                "value": errors,
            },
        ]
    points.append(
        {"metric": "request_count", "model": "other", "environment": "prod", "timestamp": DAY.isoformat(), "value": 5}
    )
    telemetry_push(points=points)


def test_the_page_shows_percentiles_error_rate_and_throughput_per_version(exec_client, telemetry):
    response = exec_client.get(reverse("telemetry:models"), {"period": PERIOD, "model": "ranker"})
    assert response.status_code == 200
    rows = {w.key.version: w for w in response.context["workloads"]}
    assert set(rows) == {"1.0", "2.0"}
    v1 = rows["1.0"]
    # One day, hourly buckets: the 9:00 bucket holds 10, 20, 30, 40, 100 ms -> p50 30, p95 88, p99 97.6.
    assert (v1.latency_p50, v1.latency_p95, v1.latency_p99) == (30, pytest.approx(88), pytest.approx(97.6))
    assert v1.error_rate == 0.01  # 72 of 7,200
    assert v1.throughput == 2.0  # 7,200 requests in the one hour that has data
    page = response.content.decode()
    assert "88.0 ms" in page and "1.00 %" in page and "2.00 /s" in page
    latency = response.context["latency_fig"]
    assert {t["name"] for t in latency["data"]} >= {"Ranker · 1.0 · prod p95", "Ranker · 2.0 · prod p50"}


def test_htmx_filter_returns_only_the_results_and_all_models_by_default(exec_client, telemetry):
    response = exec_client.get(
        reverse("telemetry:models"),
        {"period": PERIOD},
        headers={"HX-Request": "true", "HX-Target": "telemetry-results"},
    )
    html = response.content.decode()
    assert "<html" not in html and 'id="telemetry-results"' in html
    assert "<td>Ranker</td>" in html and "<td>Other</td>" in html


def test_the_csv_has_a_row_per_version_environment_and_bucket(exec_client, telemetry):
    response = exec_client.get(reverse("telemetry:models-csv"), {"period": PERIOD, "model": "ranker"})
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["version"], r["bucket_start"], r["requests"], r["error_rate"], r["latency_p95_ms"]) for r in rows] == [
        ("1.0", "2026-11-02T09:00:00+00:00", "7200.0", "0.01", "88.0"),
        ("2.0", "2026-11-02T09:00:00+00:00", "3600.0", "0.0", "50.0"),
    ]


def test_the_api_gives_the_same_figures_and_rollups(exec_client, telemetry):
    body = exec_client.get(reverse("telemetry-workloads"), {"period": PERIOD, "model": "ranker"}).json()
    assert body["grain"] == "hour"
    v1 = next(w for w in body["workloads"] if w["version"] == "1.0")
    assert (v1["requests"], v1["error_rate"], v1["latency_p50_ms"]) == (7200, 0.01, 30)
    rollups = exec_client.get(
        reverse("telemetry-rollups"),
        {
            "metric": "latency_ms",
            "model": "ranker",
            "version": "1.0",
            "start": "2026-11-02",
            "end": "2026-11-03",
            "grain": "day",
        },
    ).json()
    assert rollups["count"] == 1
    assert rollups["results"][0] | {"p95": round(rollups["results"][0]["p95"], 6)} == rollups["results"][0] | {
        "metric": "latency_ms",
        "model": "ranker",
        "version": "1.0",
        "environment": "prod",
        "count": 5,
        "sum": 200.0,
        "min": 10.0,
        "max": 100.0,
        "mean": 40.0,
        "p50": 30.0,
        "p95": 88.0,
    }
    bad = exec_client.get(reverse("telemetry-rollups"), {"metric": "nope", "start": "2026-11-02", "end": "2026-11-01"})
    assert bad.status_code == 400 and set(bad.json()) == {"metric"}
    assert exec_client.get(reverse("telemetry-workloads"), {"model": "nope"}).status_code == 400


def test_without_telemetry_the_page_names_its_sources(exec_client, db):
    page = exec_client.get(reverse("telemetry:models")).content.decode()
    assert 'data-testid="empty-state"' in page and "/api/v1/telemetry/" in page


def test_each_version_has_one_colour_in_every_chart_and_small_charts_drop_a_crowded_legend(exec_client, telemetry):
    from apps.telemetry import charts

    response = exec_client.get(reverse("telemetry:models"), {"period": PERIOD})
    colours: dict[str, set[str]] = {}
    for fig in ("latency_fig", "error_fig", "throughput_fig"):
        for trace in response.context[fig]["data"]:
            label = trace["name"].removesuffix(" p95")
            colours.setdefault(label, set()).add(trace["line"]["color"])
    assert any(k.startswith("Other") for k in colours)  # it has throughput but no latency
    assert all(len(c) == 1 for c in colours.values()), colours
    assert len({c for cs in colours.values() for c in cs}) == len(colours)  # and a different one each

    workloads = response.context["workloads"]
    assert len(response.context["throughput_fig"]["data"]) <= charts.SMALL_LEGEND
    assert response.context["throughput_fig"]["layout"].get("showlegend", True) is True
    crowded = charts.throughput_figure(workloads * 2)
    assert len(crowded["data"]) > charts.SMALL_LEGEND and crowded["layout"]["showlegend"] is False
    assert charts.latency_figure(workloads * 2)["layout"].get("showlegend", True) is True  # the full-width chart
