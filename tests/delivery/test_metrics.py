"""Cost per feature and the four DORA metrics against values worked out by hand from conftest's history."""

from datetime import date
from decimal import Decimal

import pytest

from apps.core.periods import parse_period
from apps.delivery.models import DoraBenchmark, DoraTierThreshold, Feature
from apps.delivery.selectors import DeliveryScope, cost_series, dora_benchmark, dora_series
from apps.kpis.registry import KpiFilters

from .factories import utc

pytestmark = pytest.mark.django_db

TODAY = date(2026, 11, 27)
JAN, FEB, MAR = (parse_period(k, today=TODAY) for k in ("2026-01", "2026-02", "2026-03"))
EVERYTHING = DeliveryScope()


def hours(h: float) -> Decimal:
    return Decimal(str(h))


# --- Features shipped -----------------------------------------------------------------------------------


def test_a_feature_ships_with_the_successful_production_deployment_of_its_last_change(history):
    shipped = {
        f.external_id: (f.shipped_at, f.first_deployment and f.first_deployment.external_id)
        for f in Feature.objects.all()
    }
    assert shipped["F1"] == (utc(2026, 1, 31, 12), "D1")
    assert shipped["F2"] == (utc(2026, 2, 4, 10), "D3")  # D2, the day before, failed
    assert shipped["F3"] == (utc(2026, 2, 12, 9), "D5")  # D4 took c5 to dev only
    assert shipped["F4"] == (utc(2026, 3, 2, 10), "D7")  # D6 failed in February
    for unshipped in ("F5", "F6", "F7"):  # never deployed / no changes / one change live on another service only
        assert shipped[unshipped] == (None, None)


def test_story_points_become_hours_with_the_teams_conversion(history):
    assert Feature.objects.get(external_id="F3").effort_hours == Decimal("40")  # 8 points x 5.00 h


# --- Cost per feature -----------------------------------------------------------------------------------


def test_cost_per_feature_for_each_month_by_hand(history):
    jan, feb, mar = cost_series([JAN, FEB, MAR], EVERYTHING).points
    # January: F1, 40 h x 100 = 4,000 labour; svc-a dev 100 -> 4,100 for one feature.
    assert (jan.features, jan.labour, jan.environments, jan.cost_per_feature) == (1, 4000, 100, 4100)
    # February: F2 10 h x 100 + F3 40 h x 80 = 4,200; dev/uat 300 + 500 (prod and unallocated cost excluded).
    assert (feb.features, feb.effort_hours, feb.labour, feb.environments) == (2, 50, 4200, 800)
    assert feb.cost_per_feature == Decimal("2500")
    assert (feb.labour_per_feature, feb.environments_per_feature) == (2100, 400)
    # March: F4 20 h x 80 = 1,600; billing has nothing for March, so labour only and the cost is missing.
    assert (mar.features, mar.labour, mar.environments, mar.cost_per_feature) == (1, 1600, None, 1600)
    assert mar.environments_missing


def test_cost_per_feature_by_team_adds_up_to_the_total(history):
    series = cost_series([FEB], EVERYTHING, by_team=True)
    alpha, beta = series.teams["Alpha"][-1], series.teams["Beta"][-1]
    assert (alpha.features, alpha.labour, alpha.environments, alpha.cost_per_feature) == (1, 1000, 300, 1300)
    assert (beta.features, beta.labour, beta.environments, beta.cost_per_feature) == (1, 3200, 500, 3700)
    assert series.current.total == 5000 and series.current.cost_per_feature == 2500
    assert cost_series([FEB], EVERYTHING).current.cost_per_feature == series.current.cost_per_feature


def test_cost_per_feature_of_one_team_and_of_one_service(history):
    assert cost_series([FEB], DeliveryScope(team="beta")).current.cost_per_feature == Decimal("3700")
    assert cost_series([FEB], DeliveryScope(service="svc-a")).current.cost_per_feature == Decimal("1300")
    nothing = cost_series([FEB], DeliveryScope(team="alpha", service="svc-b")).current
    assert (nothing.features, nothing.cost_per_feature) == (0, None)


def test_the_headline_kpi_is_the_pages_figure_with_the_previous_month_and_sample_size(history):
    from apps.delivery.kpis import HEADLINE_KPIS

    (definition,) = [d for d in HEADLINE_KPIS if d.key == "cost_per_feature"]
    value = definition.compute(FEB, KpiFilters())
    assert (value.value, value.previous, value.n) == (Decimal("2500"), Decimal("4100"), 2)
    assert value.direction == "down" and value.change_is_good is True
    assert value.sparkline[-2:] == [Decimal("4100"), Decimal("2500")] and len(value.sparkline) == 12
    assert value.unit == "USD per feature" and value.url_name == "delivery:overview"
    march = definition.compute(MAR, KpiFilters(team="beta"))
    assert march.value == Decimal("1600") and "environment cost missing" in march.note
    assert definition.compute(FEB, KpiFilters(environment="prod")).note.startswith("cost per feature is not cut")


# --- DORA -----------------------------------------------------------------------------------------------


def test_dora_metrics_for_february_by_hand(history):
    (feb,) = dora_series([FEB], EVERYTHING, today=TODAY)
    # Successful production deployments: D3, D5, D8 (D4 went to dev; D2 and D6 failed).
    assert (feb.deployments, feb.failed_deployments) == (3, 2)
    assert feb.deployments_per_day == Decimal(3) / 28
    assert feb.deployments_per_week == Decimal("0.75")
    # Changes first live in February: c4 22 h, c5 48 h, c3 49 h (c2's redeploy by D8 does not count again).
    assert sorted(feb.lead_times) == [22 * 3600, 48 * 3600, 49 * 3600]
    assert feb.lead_time_hours == Decimal("48")
    # Failed: D2, D6; caused incidents: D3 (twice, counted once), D5 (its incident starts Feb 28) -> 4 of 5.
    assert feb.change_failures == 4 and feb.change_failure_rate == Decimal("80")
    # Resolved in February: I5 1 h, I1 3.5 h, I3 6 h (it started on January 31).
    assert feb.time_to_restore_hours == Decimal("3.5")
    assert feb.open_incidents == 1  # I2, open across midnight into March


def test_dora_metrics_for_january_and_march_by_hand(history):
    jan, mar = dora_series([JAN, MAR], EVERYTHING, today=TODAY)
    assert (jan.deployments, jan.lead_time_hours, jan.change_failure_rate) == (1, Decimal("15"), Decimal("0"))
    assert jan.time_to_restore_hours is None and jan.open_incidents == 1  # I3 resolves on February 1
    assert mar.deployments == 1 and mar.lead_time_hours == Decimal("240")  # c7: Feb 20 10:00 -> Mar 2 10:00
    assert mar.change_failure_rate == Decimal("100")  # D7 caused I4
    assert mar.time_to_restore_hours == Decimal("6")  # I2, resolved on March 1
    assert mar.open_incidents == 1  # I4


def test_dora_metrics_of_one_team(history):
    (feb,) = dora_series([FEB], DeliveryScope(team="beta"), today=TODAY)
    assert (feb.deployments, feb.failed_deployments, feb.lead_time_hours) == (1, 1, Decimal("48"))
    assert feb.change_failure_rate == Decimal("100")  # D6 failed, D5 caused I2
    assert feb.time_to_restore_hours is None  # I2 is resolved in March


def test_deployment_frequency_of_the_current_period_counts_only_the_days_so_far(history):
    (feb,) = dora_series([FEB], EVERYTHING, today=date(2026, 2, 13))
    assert feb.days == 13 and feb.deployments == 3  # the test data has deployments "in the future" too
    assert feb.deployments_per_day == Decimal(3) / 13


def test_no_deployments_means_no_figures_rather_than_zero(catalog):
    (feb,) = dora_series([FEB], EVERYTHING, today=TODAY)
    assert feb.deployments_per_day == 0
    assert (feb.lead_time_hours, feb.change_failure_rate, feb.time_to_restore_hours) == (None, None, None)


# --- Tiers ----------------------------------------------------------------------------------------------


def test_tiers_come_from_the_stored_2024_thresholds_with_their_source(history):
    benchmark = dora_benchmark()
    assert benchmark.source_year == 2024 and "2024" in benchmark.source
    (feb,) = dora_series([FEB], EVERYTHING, today=TODAY)
    tiers = {m: benchmark.tier(m, feb.value(m)).tier for m in benchmark.thresholds}
    # 0.107 deploys/day: below weekly (0.142857), above monthly -> medium. 48 h <= 168 h -> high.
    # 80% fails every bound -> low. 3.5 h <= 24 h -> high.
    assert tiers == {
        "deployment_frequency": "medium",
        "lead_time": "high",
        "change_failure_rate": "low",
        "time_to_restore": "high",
    }


def test_tiers_follow_the_data_when_an_admin_edits_a_threshold_or_switches_the_year(history):
    DoraTierThreshold.objects.filter(benchmark__source_year=2024, metric="deployment_frequency", tier="high").update(
        bound=Decimal("0.1")
    )
    (feb,) = dora_series([FEB], EVERYTHING, today=TODAY)
    assert dora_benchmark().tier("deployment_frequency", feb.deployments_per_day).tier == "high"

    DoraBenchmark.objects.update(active=False)
    DoraBenchmark.objects.filter(source_year=2023).update(active=True)
    benchmark = dora_benchmark()
    assert benchmark.source_year == 2023
    assert benchmark.tier("change_failure_rate", Decimal("12")).tier == "medium"  # 2023: <= 15%
    assert benchmark.tier("time_to_restore", Decimal("100")).tier == "medium"  # 2023: <= one week


def test_changing_a_teams_hours_per_point_re_derives_its_point_estimated_features(history):
    from apps.delivery.services import team_delivery_profile_set

    team_delivery_profile_set(team=history["beta"], hours_per_point=Decimal("6.25"))
    assert Feature.objects.get(external_id="F3").effort_hours == Decimal("50")  # 8 x 6.25
    (feb,) = cost_series([FEB], EVERYTHING).points
    assert feb.labour == Decimal("5000")  # 10 h x 100 + 50 h x 80
