"""The capacity pages, their CSV exports and API: the figures a user reads, computed by hand."""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.capacity.models import Forecast, ForecastRun
from apps.kpis.registry import KpiFilters
from tests.capacity.factories import push
from tests.factories import EnvironmentFactory, TeamFactory
from tests.telemetry.factories import CapacityPoolFactory

pytestmark = pytest.mark.django_db
DAY = datetime(2026, 11, 2, tzinfo=UTC)
HOURS = [DAY + timedelta(hours=h) for h in range(48)]
PERIOD = "2026-11-02..2026-11-03"


@pytest.fixture
def gpu():
    TeamFactory()  # the billing currency comes from the teams: USD
    pool = CapacityPoolFactory(
        slug="gpu",
        name="GPU fleet",
        resource_type="gpu",
        environment=EnvironmentFactory(slug="prod"),
        unit_price_per_hour=Decimal("2.00"),
        target_utilisation=Decimal("0.800"),
    )
    push("gpu_provisioned", dict.fromkeys(HOURS, 10), pool="gpu")
    push("gpu_used", {h: 4 if h.day == 2 else 8 for h in HOURS}, pool="gpu")
    run = ForecastRun.objects.create(
        kind="pool_demand",
        grain="day",
        status="succeeded",
        data_start=DAY - timedelta(days=90),
        data_end=DAY + timedelta(days=2),
        horizon=3,
        finished_at=DAY + timedelta(days=2),
    )
    Forecast.objects.create(
        run=run,
        pool=pool,
        metric="gpu_used",
        grain="day",
        method="gbm",
        provisioned=10,
        exhaustion_days=3,
        exhaustion_date=date(2026, 11, 6),
        peak_demand=11,
        recommended_capacity=13.75,
        excess_capacity=0,
        monthly_saving=Decimal("0"),
        backtest_mase=0.8,
        backtest_ratio=0.9,
        backtest_coverage=0.75,
        backtest_origins=2,
        history_start=DAY - timedelta(days=88),
        history_end=DAY + timedelta(days=1),
        points=[
            ["2026-11-04T00:00:00+00:00", 8.5, 7, 9.5],
            ["2026-11-05T00:00:00+00:00", 9, 7.5, 9.9],
            ["2026-11-06T00:00:00+00:00", 9.5, 8, 11],
        ],
    )
    return pool


def test_the_overview_shows_waste_utilisation_exhaustion_and_the_kpi_figure(exec_client, gpu):
    response = exec_client.get(reverse("capacity:overview"), {"period": PERIOD})
    assert response.status_code == 200
    page = response.content.decode()
    # Two days of 10 GPUs at 2.00 = 960; used 4 then 8 -> utilisation 0.6; waste 960 x (1 - 0.6 / 0.8) = 240.
    assert response.context["kpi"].value == Decimal("240")
    assert '<div class="tile-value">240 <span class="tile-unit">USD</span>' in page
    assert "60.0 %" in page and "GPU fleet" in page
    assert response.context["overview"].nearest_exhaustion[0].forecast.exhaustion_days == 3
    heat = response.context["heatmap_fig"]
    assert heat["data"][0]["z"] == [[0.4, 0.8]] and heat["data"][0]["x"] == ["2026-11-02", "2026-11-03"]
    assert 'data-figure="fig-heatmap"' in page and 'id="fig-heatmap"' in page
    assert "MASE 0.80 (0.90× naive)" in page and "coverage 75 % of 80 %" in page


def test_the_overview_uses_the_headline_kpi_function(exec_client, gpu, monkeypatch):
    calls = []
    from apps.capacity import views

    original = views.capacity_waste

    def spy(period, filters, **kwargs):
        calls.append((period.key, filters, kwargs))
        return original(period, filters, **kwargs)

    monkeypatch.setattr(views, "capacity_waste", spy)
    exec_client.get(reverse("capacity:overview"), {"period": PERIOD, "environment": "prod"})
    assert calls == [(PERIOD, KpiFilters(), {"environment": "prod", "resource_type": ""})]


def test_htmx_filters_swap_only_the_results(exec_client, gpu):
    response = exec_client.get(
        reverse("capacity:overview"),
        {"period": PERIOD, "resource_type": "cpu"},
        headers={"HX-Request": "true", "HX-Target": "capacity-results"},
    )
    html = response.content.decode()
    assert "<html" not in html and 'id="capacity-results"' in html
    assert "GPU fleet" not in html and "No data for" in html  # no CPU pool has data


def test_the_overview_csv_has_one_row_per_pool(exec_client, gpu):
    response = exec_client.get(reverse("capacity:overview-csv"), {"period": PERIOD})
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert response["Content-Disposition"] == f'attachment; filename="capacity-{PERIOD}.csv"'
    assert len(rows) == 1
    row = rows[0]
    assert (row["pool"], row["hours"], row["utilisation"], row["waste_cost"]) == ("gpu", "48", "0.6", "240.000000")
    assert (Decimal(row["cost"]), row["cost_basis"], row["days_to_exhaustion"]) == (
        Decimal("960"),
        "capacity x unit price",
        "3",
    )


def test_the_pool_page_shows_the_forecast_band_exhaustion_and_backtest(exec_client, gpu):
    response = exec_client.get(reverse("capacity:pool", args=["gpu"]), {"period": PERIOD})
    page = response.content.decode()
    assert response.status_code == 200
    figure = response.context["forecast_fig"]
    names = [t["name"] for t in figure["data"]]
    assert {"Provisioned", "Forecast", "80 % interval", "Exhaustion in 3 d"} <= set(names)
    marker = next(t for t in figure["data"] if t["name"] == "Exhaustion in 3 d")
    assert marker["y"] == [10] and marker["x"][0].date() == date(2026, 11, 6)  # first upper bound >= 10
    assert "3 d</span>days to exhaustion (2026-11-06)" in page
    assert "of actuals inside the 80 % interval" in page
    days = response.context["days"]
    assert [(d.utilisation, d.waste_cost) for d in days] == [(0.4, Decimal("240")), (0.8, Decimal("0"))]
    hourly = exec_client.get(
        reverse("capacity:pool", args=["gpu"]),
        {"grain": "hour"},
        headers={"HX-Request": "true", "HX-Target": "pool-forecast"},
    ).content.decode()
    assert "<html" not in hourly and "No hourly forecast for this pool yet" in hourly


def test_the_pool_csv_has_one_row_per_day(exec_client, gpu):
    response = exec_client.get(reverse("capacity:pool-csv", args=["gpu"]), {"period": PERIOD})
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["day"], r["utilisation"], Decimal(r["cost"]), r["waste_cost"]) for r in rows] == [
        ("2026-11-02", "0.4", Decimal("480"), "240.000000"),
        ("2026-11-03", "0.8", Decimal("480"), "0.000000"),
    ]


def test_the_api_gives_the_page_figures(exec_client, gpu):
    body = exec_client.get(reverse("capacity-pools"), {"period": PERIOD}).json()
    assert Decimal(body["waste_cost"]) == Decimal("240") and body["currency"] == "USD"
    pool = body["pools"][0]
    assert pool["pool"] == "gpu" and pool["capacity"]["utilisation"] == 0.6 and pool["capacity"]["hours"] == 48
    assert pool["forecast"]["exhaustion_days"] == 3 and pool["forecast"]["backtest_coverage"] == 0.75
    detail = exec_client.get(reverse("capacity-pool-detail", args=["gpu"]), {"period": PERIOD}).json()
    assert [d["day"] for d in detail["days"]] == ["2026-11-02", "2026-11-03"]
    assert exec_client.get(reverse("capacity-pools"), {"period": "2026-13"}).status_code == 400


def test_an_admin_starts_forecast_runs_and_sees_their_progress(admin_client_portal, exec_client, gpu):
    response = admin_client_portal.post(reverse("capacity:run-start"), {"grain": "day"})
    assert response.status_code == 302
    runs = ForecastRun.objects.filter(requested_by__isnull=False)
    assert {r.kind for r in runs} == {"pool_demand", "service_units"}
    pool_run = runs.get(kind="pool_demand")
    progress = exec_client.get(reverse("capacity:run", args=[pool_run.pk])).content.decode()
    assert 'hx-trigger="every 2s"' in progress and "0 of 1 series" in progress


def test_without_capacity_telemetry_the_page_names_its_source(exec_client, db):
    page = exec_client.get(reverse("capacity:overview")).content.decode()
    assert 'data-testid="empty-state"' in page and "telemetry push API" in page


def test_the_overview_stays_within_a_query_budget(exec_client, gpu, django_assert_max_num_queries):
    for i in range(5):
        CapacityPoolFactory(slug=f"extra-{i}", environment=gpu.environment)
    with django_assert_max_num_queries(30):
        exec_client.get(reverse("capacity:overview"), {"period": PERIOD})


def test_a_period_not_over_compares_its_waste_uncoloured_against_all_of_the_previous(exec_client, gpu, monkeypatch):
    """Waste cost is a sum over the period: while the period runs, its change against the whole previous
    period is shown without a good/bad colour, and says the period is not over."""
    from apps.core import context_processors

    before = [DAY - timedelta(days=2) + timedelta(hours=h) for h in range(48)]  # 31 Oct and 1 Nov
    push("gpu_provisioned", dict.fromkeys(before, 10), pool="gpu")
    push("gpu_used", dict.fromkeys(before, 2), pool="gpu")  # waste 960 x (1 - 0.2 / 0.8) = 720

    monkeypatch.setattr(context_processors.timezone, "localdate", lambda: date(2026, 11, 3))
    note = _waste_note(exec_client.get(reverse("capacity:overview"), {"period": PERIOD}))
    assert note == "-480 vs all of 31 Oct 2026 to 1 Nov 2026 (2 Nov 2026 to 3 Nov 2026 is not over yet)"

    monkeypatch.setattr(context_processors.timezone, "localdate", lambda: date(2026, 11, 10))
    response = exec_client.get(reverse("capacity:overview"), {"period": PERIOD})
    assert '<span class="rag rag-green"></span> -480 vs 31 Oct 2026 to 1 Nov 2026' in response.content.decode()


def _waste_note(response) -> str:
    html = response.content.decode()
    tile = html.split('data-testid="tile-waste"', 1)[1]
    return tile.split('<div class="tile-note">', 1)[1].split("</div>", 1)[0].strip()
