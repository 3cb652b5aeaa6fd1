"""Pulls against a real Prometheus (Debian's package, on loopback, scraping an exporter this test serves), and
against a local server that fails, and a closed port: what is stored, what is recorded, and that nothing is lost."""

import time
from datetime import timedelta
from itertools import pairwise
from types import SimpleNamespace

import pytest
import requests
from django.utils import timezone

from apps.telemetry import prometheus
from apps.telemetry.models import MetricMapping, Point, TelemetryPull
from apps.telemetry.presets import PRESETS
from apps.telemetry.prometheus import align, render_query
from apps.telemetry.services import source_pull
from apps.telemetry.tasks import pull_source_task
from tests.factories import EnvironmentFactory
from tests.telemetry.factories import (
    CapacityPoolFactory,
    MetricMappingFactory,
    ModelVersionFactory,
    TelemetrySourceFactory,
)
from tests.telemetry.servers import Exporter, FakeApi, closed_port_url, running_prometheus, wait_for_value

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

LINES = [
    "# TYPE opsportal_gpu_used gauge",
    'opsportal_gpu_used{pool="gpu-pool"} 3.5',
    "# TYPE opsportal_gpu_provisioned gauge",
    'opsportal_gpu_provisioned{pool="gpu-pool"} 8',
    "# TYPE opsportal_latency_ms gauge",
    'opsportal_latency_ms{model="ranker",version="2.1.0",namespace="prod"} 42.5',
    'opsportal_latency_ms{model="unknown-model",version="1",namespace="prod"} 7',
]
Status = TelemetryPull.Status


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    exporter = Exporter(list(LINES))
    try:
        with running_prometheus(tmp_path_factory.mktemp("prometheus"), exporter.port) as url:
            wait_for_value(url, "opsportal_gpu_used")
            yield SimpleNamespace(url=url, exporter=exporter, first_data=time.monotonic())
    finally:
        exporter.close()


@pytest.fixture
def catalog():
    prod = EnvironmentFactory(slug="prod")
    return SimpleNamespace(
        prod=prod,
        pool=CapacityPoolFactory(slug="gpu-pool", environment=prod),
        version=ModelVersionFactory(model__slug="ranker", version="2.1.0"),
    )


def _source(url: str, **kwargs):
    source = TelemetrySourceFactory(base_url=url, step_seconds=1, backfill_hours=1, **kwargs)
    MetricMappingFactory(source=source, metric="gpu_used", query="sum by (pool) (opsportal_gpu_used)")
    MetricMappingFactory(source=source, metric="gpu_provisioned", query="sum by (pool) (opsportal_gpu_provisioned)")
    MetricMappingFactory(
        source=source,
        metric="latency_ms",
        query="max by (model, version, namespace) (opsportal_latency_ms)",
        pool_label="",
        model_label="model",
        version_label="version",
        environment_label="namespace",
    )
    return source


def _values(metric: str) -> list[float]:
    return list(Point.objects.filter(series__metric=metric).order_by("ts").values_list("value", flat=True))


def _stamps(metric: str) -> list:
    return list(Point.objects.filter(series__metric=metric).order_by("ts").values_list("ts", flat=True))


def test_pull_stores_what_prometheus_serves_then_only_new_points_and_survives_an_outage(prom, catalog):
    source = _source(prom.url)
    time.sleep(max(0.0, prom.first_data + 3 - time.monotonic()))  # a few whole-second steps of samples
    now = timezone.now()
    first = source_pull(source=source, now=now)

    # The unknown model's series is reported, not stored; everything else is.
    assert first.status == Status.PARTIAL
    assert any("unknown-model" in e and "no ML model with this slug" in e for e in first.errors)
    assert set(_values("gpu_used")) == {3.5} and len(_values("gpu_used")) >= 2
    assert set(_values("gpu_provisioned")) == {8.0}
    latency = Point.objects.filter(series__metric="latency_ms").select_related("series")
    assert {(p.value, p.series.version_id, p.series.environment_id) for p in latency} == {
        (42.5, catalog.version.pk, catalog.prod.pk)
    }
    assert all(ts.microsecond == 0 for ts in _stamps("gpu_used"))  # evaluated on whole 1 s steps
    assert first.points_stored == Point.objects.count() == first.points_received
    assert (first.series_count, first.requests, first.retryable) == (3, 3, False)
    assert first.duration_seconds > 0 and first.finished_at is not None
    watermark = align(now, 1)
    assert set(MetricMapping.objects.values_list("pulled_until", flat=True)) == {watermark}
    assert max(_stamps("gpu_used")) <= watermark

    # The exporter changes; the second pull asks only for what came after the first.
    prom.exporter.lines = [line.replace("} 3.5", "} 4.25") for line in LINES]
    wait_for_value(prom.url, "opsportal_gpu_used == 4.25")
    time.sleep(1.2)  # so the last whole-second step lies after the new scrape
    before = {(p.series_id, p.ts): p.value for p in Point.objects.all()}
    second = source_pull(source=source)
    after = {(p.series_id, p.ts): p.value for p in Point.objects.all()}
    added = set(after) - set(before)
    assert all(after[key] == value for key, value in before.items())  # nothing stored before was rewritten
    assert added and all(ts > watermark for _, ts in added)
    assert second.points_stored == second.points_received == len(added)
    assert _values("gpu_used")[-1] == 4.25

    # Prometheus down: every attempt is recorded, retried with backoff, and no watermark moves.
    watermark = MetricMapping.objects.get(metric="gpu_used").pulled_until
    source.base_url = closed_port_url()
    source.save()
    time.sleep(1.1)  # a new whole-second step to ask for
    outcome = pull_source_task.apply(args=[source.pk])
    assert outcome.state == "FAILURE"
    failed = list(TelemetryPull.objects.filter(status=Status.FAILED).order_by("attempt"))
    assert [p.attempt for p in failed] == [1, 2, 3]  # the first try and source.max_retries = 2 retries
    assert all(p.retryable and "cannot reach" in p.errors[0] for p in failed)
    assert MetricMapping.objects.get(metric="gpu_used").pulled_until == watermark

    # Back up: the next pull fills the gap, so the series has a sample at every step, first to last.
    time.sleep(1.5)
    source.base_url = prom.url
    source.save()
    recovered = source_pull(source=source)
    assert recovered.status == Status.PARTIAL and recovered.points_stored > 0
    stamps = _stamps("gpu_used")
    assert [b - a for a, b in pairwise(stamps)] == [timedelta(seconds=1)] * (len(stamps) - 1)
    assert Point.objects.filter(series__metric="gpu_used", ts__gt=watermark).exists()


def test_a_query_prometheus_refuses_fails_its_mapping_only(prom, catalog):
    source = TelemetrySourceFactory(base_url=prom.url, step_seconds=1, backfill_hours=1)
    good = MetricMappingFactory(source=source, metric="gpu_used", query="sum by (pool) (opsportal_gpu_used)")
    bad = MetricMappingFactory(source=source, metric="gpu_provisioned", query="sum by (pool (opsportal_gpu_used")
    pull = source_pull(source=source)
    assert pull.status == Status.PARTIAL and not pull.retryable
    assert len(pull.errors) == 1 and "gpu_provisioned: HTTP 400 bad_data" in pull.errors[0]
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.pulled_until is not None and bad.pulled_until is None
    assert _values("gpu_used") and not _values("gpu_provisioned")


def test_long_windows_are_split_into_chunks_under_the_point_limit(prom, catalog, monkeypatch):
    monkeypatch.setattr(prometheus, "MAX_POINTS_PER_QUERY", 5)
    time.sleep(max(0.0, prom.first_data + 22 - time.monotonic()))  # 20 s of samples to pull
    now = timezone.now()
    end = align(now, 1)
    source = TelemetrySourceFactory(base_url=prom.url, step_seconds=1)
    MetricMappingFactory(
        source=source,
        metric="gpu_used",
        query="sum by (pool) (opsportal_gpu_used)",
        pulled_until=end - timedelta(seconds=20),
    )
    pull = source_pull(source=source, now=now)
    assert pull.status == Status.SUCCEEDED
    assert pull.requests == 4  # 20 steps, 5 per query
    stamps = _stamps("gpu_used")
    assert stamps == [end - timedelta(seconds=19 - i) for i in range(20)]


def test_every_preset_query_is_valid_promql(prom):
    for name, mappings in PRESETS.items():
        for spec in mappings:
            query = render_query(spec["query"], step_seconds=60, window="5m")
            body = requests.get(f"{prom.url}/api/v1/query", params={"query": query}, timeout=5).json()
            assert body["status"] == "success", f"{name} {spec['metric']}: {body.get('error')}"


def test_a_prometheus_answering_500_is_recorded_retried_and_then_loses_nothing(catalog):
    api = FakeApi(500, {"status": "error", "errorType": "internal", "error": "boom"})
    try:
        source = TelemetrySourceFactory(base_url=api.url, step_seconds=60, backfill_hours=1)
        # Already pulled up to a known point: failed attempts must not move it, whatever the clock does.
        pulled_until = align(timezone.now() - timedelta(minutes=30), 60)
        MetricMappingFactory(source=source, metric="gpu_used", pulled_until=pulled_until)
        pull_source_task.apply(args=[source.pk])
        failed = TelemetryPull.objects.filter(status=Status.FAILED).order_by("attempt")
        assert [(p.attempt, p.retryable) for p in failed] == [(1, True), (2, True), (3, True)]
        assert "HTTP 500: boom" in failed[0].errors[0]
        assert MetricMapping.objects.get().pulled_until == pulled_until

        # Answering again: the window asked for starts where the failed attempts started.
        stamp = int(time.time()) // 60 * 60 - 120
        api.status, api.body = (
            200,
            {
                "status": "success",
                "data": {
                    "resultType": "matrix",
                    "result": [
                        {
                            "metric": {"pool": "gpu-pool"},
                            "values": [[stamp, "NaN"], [stamp + 60, "+Inf"], [stamp + 120, "1.5"]],
                        }
                    ],
                },
            },
        )
        pull = source_pull(source=source)
        assert pull.status == Status.SUCCEEDED
        first_start = requests.utils.unquote(api.requests[0]["body"]).split("start=")[1].split("&")[0]
        last_start = requests.utils.unquote(api.requests[-1]["body"]).split("start=")[1].split("&")[0]
        assert first_start == last_start == f"{(pulled_until + timedelta(seconds=60)).timestamp():.3f}"
        # NaN and infinities are skipped and counted, the finite sample stored.
        assert (pull.points_received, pull.points_stored, pull.points_skipped) == (1, 1, 2)
        assert _values("gpu_used") == [1.5]
    finally:
        api.close()


def test_the_auth_header_comes_from_the_named_environment_variable(catalog, monkeypatch):
    api = FakeApi(200, {"status": "success", "data": {"resultType": "matrix", "result": []}})
    try:
        source = TelemetrySourceFactory(base_url=api.url, auth_header="Authorization", auth_env_var="OPS_TEST_PROM")
        MetricMappingFactory(source=source)
        monkeypatch.delenv("OPS_TEST_PROM", raising=False)
        outcome = pull_source_task.apply(args=[source.pk])
        missing = TelemetryPull.objects.get()
        assert (missing.status, missing.retryable) == (Status.FAILED, False)  # not retried: it cannot fix itself
        assert "environment variable OPS_TEST_PROM" in missing.errors[0]
        assert outcome.state == "SUCCESS" and not api.requests

        monkeypatch.setenv("OPS_TEST_PROM", "Bearer s3cret")
        pull = source_pull(source=source)
        assert pull.status == Status.SUCCEEDED
        assert api.requests[0]["headers"]["Authorization"] == "Bearer s3cret"
        assert api.requests[0]["path"] == "/api/v1/query_range"
    finally:
        api.close()
