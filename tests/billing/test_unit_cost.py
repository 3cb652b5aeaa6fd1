"""Allocation, shared-cost spreading and unit cost as KPIS.md section 1 defines them, against hand-computed figures.

The scenario goes through the real path: a FOCUS file written here is imported by the importer, rules
are saved by the rule service, units by the units service. Expected values are worked out by hand in
the comments; database sums use assert_money_equal (exact on PostgreSQL).
"""

import csv
import json
import sys
import types
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from apps.billing import kpis, reports, services
from apps.billing.models import AllocationRule, BillingImport, BillingLineItem, BillingSource, Reallocation, UnitVolume
from apps.core.periods import parse_period
from apps.kpis.registry import KpiFilters
from tests.factories import EnvironmentFactory, ServiceFactory

from .money import assert_money_equal

pytestmark = pytest.mark.django_db

FOCUS_HEADER = [
    "BillingAccountId",
    "SubAccountId",
    "ProviderName",
    "ServiceName",
    "ServiceCategory",
    "ResourceId",
    "ResourceName",
    "RegionId",
    "ChargeCategory",
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "Tags",
]
MARCH, FEBRUARY = parse_period("2026-03", today=date(2026, 4, 2)), parse_period("2026-02", today=date(2026, 4, 2))


def _ts(day: date) -> str:
    return f"{day:%Y-%m-%d}T00:00:00Z"


def focus_file(folder: Path, name: str, items: list[dict]) -> Path:
    """A minimal FOCUS CSV: one row per item (day, billed, effective, tags, sub, resource, category, provider)."""
    path = folder / name
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(FOCUS_HEADER)
        for item in items:
            day = item["day"]
            month = day.replace(day=1)
            next_month = (month + timedelta(days=32)).replace(day=1)
            out.writerow(
                [
                    "payer-1",
                    item.get("sub", "acct-1"),
                    item.get("provider", "AWS"),
                    item.get("service_name", "Amazon Elastic Compute Cloud"),
                    "Compute",
                    item.get("resource", ""),
                    item.get("resource", ""),
                    item.get("region", "eu-west-1"),
                    item.get("category", "Usage"),
                    item["billed"],
                    item["effective"],
                    item["billed"],
                    item["billed"],
                    "USD",
                    _ts(month),
                    _ts(next_month),
                    _ts(day),
                    _ts(day + timedelta(days=1)),
                    json.dumps(item["tags"]) if item.get("tags") else "",
                ]
            )
    return path


def import_items(folder: Path, name: str, items: list[dict], source: BillingSource | None = None) -> BillingSource:
    source = source or BillingSource.objects.get_or_create(name="test-focus", defaults={"format": "focus"})[0]
    result = services.billing_import_path(source=source, path=str(focus_file(folder, name, items)))
    assert result.status == BillingImport.Status.SUCCEEDED, result.error
    return source


def save_rule(**fields) -> AllocationRule:
    """Save a rule and run the re-allocation a worker would."""
    rule = services.allocation_rule_save(rule=AllocationRule(**fields))
    services.reallocations_run_pending()
    return rule


def store_units(service, **per_day) -> None:
    """store_units(alpha, d2026_03_01=600): units of one service per day."""
    volumes = {(service.pk, date.fromisoformat(k[1:].replace("_", "-"))): Decimal(v) for k, v in per_day.items()}
    services.unit_volumes_store(volumes=volumes, source="import")


# March: direct EffectiveCost alpha 100.10 + 49.90 = 150.00; beta 200.00 + 50.00 (the GPU node a resource
# rule gives to beta although it is tagged alpha: first match wins) = 250.00. The shared account's 80.00
# is spread by direct cost: alpha 80 x 150/400 = 30.00, beta 80 x 250/400 = 50.00. The untagged 20.00
# stays unallocated. Total 500.00.
MARCH_ITEMS = [
    {"day": date(2026, 3, 2), "billed": "120.00", "effective": "100.10", "tags": {"service": "alpha", "env": "prod"}},
    {"day": date(2026, 3, 15), "billed": "50.00", "effective": "49.90", "tags": {"service": "alpha", "env": "dev"}},
    {"day": date(2026, 3, 5), "billed": "200.00", "effective": "200.00", "tags": {"service": "beta", "env": "prod"}},
    {"day": date(2026, 3, 5), "billed": "80.00", "effective": "50.00", "tags": {"service": "alpha"},
     "resource": "gpu-node-7"},
    {"day": date(2026, 3, 10), "billed": "90.00", "effective": "80.00", "sub": "shared-acct"},
    {"day": date(2026, 3, 20), "billed": "20.00", "effective": "20.00", "sub": "sandbox"},
]  # fmt: skip
FEBRUARY_ITEMS = [
    {"day": date(2026, 2, 10), "billed": "100.00", "effective": "100.00", "tags": {"service": "alpha", "env": "prod"}},
    {"day": date(2026, 2, 10), "billed": "300.00", "effective": "300.00", "tags": {"service": "beta", "env": "prod"}},
]  # fmt: skip


def build_scenario(folder: Path) -> types.SimpleNamespace:
    """Two months of billing for services alpha and beta, four rules and units (see the figures above)."""
    EnvironmentFactory(slug="prod", name="Production", kind="prod")
    EnvironmentFactory(slug="dev", name="Development", kind="dev")
    alpha = ServiceFactory(slug="alpha", name="Alpha", unit_name="1,000 predictions")
    beta = ServiceFactory(slug="beta", name="Beta", unit_name="checkout")
    gamma = ServiceFactory(slug="gamma", name="Gamma", unit_name="store-day")  # no cost, no units: not listed
    save_rule(name="Shared account", order=10, match="sub_account", value="shared-acct", shared=True)
    save_rule(name="GPU nodes", order=20, match="resource", value="^gpu-", service=beta)
    save_rule(name="Alpha", order=30, match="tag", tag_key="service", value="alpha", service=alpha)
    save_rule(name="Beta", order=31, match="tag", tag_key="service", value="beta", service=beta)
    source = import_items(folder, "march.csv", MARCH_ITEMS)
    import_items(folder, "february.csv", FEBRUARY_ITEMS, source)
    # Units: alpha 600 + 900 = 1,500 in March, 1,000 in February; beta 2,000 in both.
    store_units(alpha, d2026_03_01=600, d2026_03_02=900, d2026_02_10=1000)
    store_units(beta, d2026_03_31=2000, d2026_02_28=2000)
    return types.SimpleNamespace(alpha=alpha, beta=beta, gamma=gamma, source=source)


@pytest.fixture
def scenario(tmp_path):
    return build_scenario(tmp_path)


def _row(report, slug):
    return next(r for r in report.rows if r.service.slug == slug)


def test_allocated_cost_is_direct_plus_shared_share_and_unit_cost_divides_by_units(scenario):
    report = reports.unit_cost_report(MARCH)
    assert [r.service.slug for r in report.rows] == ["beta", "alpha"]  # costliest first; gamma has nothing
    alpha, beta = _row(report, "alpha"), _row(report, "beta")
    assert_money_equal(alpha.current.direct, "150.00")
    assert_money_equal(alpha.current.shared, "30.00")
    assert_money_equal(alpha.current.cost, "180.00")
    assert_money_equal(beta.current.direct, "250.00")
    assert_money_equal(beta.current.shared, "50.00")
    assert_money_equal(beta.current.cost, "300.00")
    assert alpha.current.units == Decimal(1500) and alpha.current.units_source == "imported"
    assert_money_equal(alpha.unit_cost, "0.12")  # 180 / 1,500
    assert_money_equal(beta.unit_cost, "0.15")  # 300 / 2,000
    assert_money_equal(report.totals.total, "500.00")
    assert_money_equal(report.totals.unallocated, "20.00")
    assert_money_equal(report.totals.unallocated_share, "0.04")  # 20 / 500
    assert report.currency == "USD"


def test_change_against_the_previous_period_and_the_cost_weighted_headline(scenario):
    report = reports.unit_cost_report(MARCH)
    alpha, beta = _row(report, "alpha"), _row(report, "beta")
    # February: alpha 100 / 1,000 = 0.10, beta 300 / 2,000 = 0.15.
    assert_money_equal(alpha.previous_unit_cost, "0.10")
    assert_money_equal(beta.previous_unit_cost, "0.15")
    assert_money_equal(alpha.change, "0.2")  # 0.12 / 0.10 - 1
    assert_money_equal(beta.change, "0")
    assert_money_equal(alpha.cost_change, "0.8")  # 180 / 100 - 1
    assert_money_equal(alpha.units_change, "0.5")  # 1,500 / 1,000 - 1
    # Weighted by February cost (alpha 100, beta 300): (100 x 1.2 + 300 x 1.0) / 400 - 1 = 0.05.
    assert_money_equal(report.weighted_change, "0.05")
    value = kpis.unit_cost(MARCH, KpiFilters())
    assert_money_equal(value.value, "5")
    assert value.unit == "% change vs February 2026"
    assert value.n == 2


def test_billed_cost_is_selectable(scenario):
    report = reports.unit_cost_report(MARCH, cost="billed")
    alpha, beta = _row(report, "alpha"), _row(report, "beta")
    # BilledCost direct: alpha 120 + 50 = 170, beta 200 + 80 = 280. The shared 90.00 is spread in proportion
    # to direct EffectiveCost (150 : 250), the allocation's basis: alpha 33.75, beta 56.25.
    assert_money_equal(alpha.current.cost, "203.75")
    assert_money_equal(beta.current.cost, "336.25")
    assert_money_equal(alpha.unit_cost, Decimal("203.75") / 1500)
    assert_money_equal(report.totals.total, "560.00")  # 120 + 50 + 200 + 80 + 90 + 20


def test_even_and_weighted_spreads_reallocate_when_the_rule_changes(scenario):
    rule = AllocationRule.objects.get(name="Shared account")
    rule.spread = AllocationRule.Spread.EVEN
    services.allocation_rule_save(rule=rule)
    # Saved, not yet re-allocated: the figures stay those of the earlier rules until the worker has run.
    report = reports.unit_cost_report(MARCH)
    assert_money_equal(_row(report, "alpha").current.shared, Decimal(80) * 150 / 400)  # by direct cost still
    waiting = Reallocation.objects.get(status=Reallocation.Status.QUEUED)
    assert waiting.reason == "rule Shared account changed"
    [done] = services.reallocations_run_pending()
    periods = len(set(BillingLineItem.objects.values_list("source_id", "billing_period_start")))
    assert (done.pk, done.status, done.periods_done, done.periods_total) == (waiting.pk, "succeeded", periods, periods)
    report = reports.unit_cost_report(MARCH)
    assert_money_equal(_row(report, "alpha").current.shared, "40.00")  # 80 / 2
    assert_money_equal(_row(report, "beta").current.shared, "40.00")

    rule.spread, rule.weights = AllocationRule.Spread.WEIGHTS, {"alpha": 1, "beta": 3}
    services.allocation_rule_save(rule=rule)
    services.reallocations_run_pending()
    report = reports.unit_cost_report(MARCH)
    assert_money_equal(_row(report, "alpha").current.cost, "170.00")  # 150 + 80 x 1/4
    assert_money_equal(_row(report, "beta").current.cost, "310.00")  # 250 + 80 x 3/4
    assert_money_equal(report.totals.unallocated, "20.00")


def test_first_matching_rule_wins_and_unmatched_cost_is_never_dropped(scenario):
    # Without the resource rule the GPU node's 50.00 goes to alpha by its tag.
    services.allocation_rule_delete(rule=AllocationRule.objects.get(name="GPU nodes"))
    services.reallocations_run_pending()
    report = reports.unit_cost_report(MARCH)
    # Direct: alpha 200, beta 200; shared 80 split 40/40.
    assert_money_equal(_row(report, "alpha").current.cost, "240.00")
    assert_money_equal(_row(report, "beta").current.cost, "240.00")
    # With no rule at all every cent is unallocated, and still counted.
    remaining = list(AllocationRule.objects.all())
    for rule in remaining:
        services.allocation_rule_delete(rule=rule)
    # One re-allocation takes in every change made while it waited for a worker.
    assert Reallocation.objects.filter(status=Reallocation.Status.QUEUED).get().changes == len(remaining)
    services.reallocations_run_pending()
    report = reports.unit_cost_report(MARCH)
    assert_money_equal(report.totals.unallocated, "500.00")
    assert_money_equal(report.totals.total, "500.00")
    assert all(r.current.cost == 0 for r in report.rows)


def test_a_service_without_units_has_no_unit_cost_rather_than_a_division_by_zero(scenario):
    UnitVolume.objects.filter(service=scenario.beta, day__gte=MARCH.start).delete()
    row = _row(reports.unit_cost_report(MARCH), "beta")
    assert row.current.units is None and row.unit_cost is None and row.change is None


def test_units_fall_back_to_telemetry_when_none_are_imported(scenario, monkeypatch):
    asked = []

    def service_units(service, start, end):
        asked.append((service.slug, start, end))
        return Decimal(800) if service.slug == "beta" else None

    monkeypatch.setitem(sys.modules, "apps.telemetry.selectors", types.SimpleNamespace(service_units=service_units))
    UnitVolume.objects.filter(service=scenario.beta).delete()
    report = reports.unit_cost_report(MARCH)
    beta = _row(report, "beta")
    assert beta.current.units == 800 and beta.current.units_source == "telemetry"
    assert_money_equal(beta.unit_cost, "0.375")  # 300 / 800
    assert all(slug != "alpha" for slug, _, _ in asked), "imported units win over telemetry"


def test_unit_cost_target_comes_from_the_kpi_targets(scenario):
    target_model = reports.targets_model()
    if target_model is None:
        pytest.skip("the KPI targets model is not installed")
    target_model.objects.create(
        kpi="unit_cost", service=scenario.alpha, month=date(2026, 3, 1), value=Decimal("0.11"), direction="down"
    )
    target_model.objects.create(
        kpi="unit_cost", service=scenario.beta, month=date(2026, 3, 1), value=Decimal("0.20"), direction="down"
    )
    report = reports.unit_cost_report(MARCH)
    # alpha 0.12 against 0.11: above a down-is-good target, within 10 % of it (0.121): amber. beta 0.15 <= 0.20.
    assert (_row(report, "alpha").target, _row(report, "alpha").rag) == (Decimal("0.11"), "amber")
    assert _row(report, "beta").rag == "green"
    value = kpis.unit_cost(MARCH, KpiFilters(service="alpha"))
    assert_money_equal(value.value, "0.12")
    assert_money_equal(value.previous, "0.10")
    assert (value.target, value.rag, value.unit) == (Decimal("0.11"), "amber", "USD per 1,000 predictions")
    # Targets are monthly: a quarter shows none.
    quarter = reports.unit_cost_report(parse_period("2026-Q1", today=date(2026, 4, 2)))
    assert quarter.targets_available and not quarter.targets_apply
    assert _row(quarter, "alpha").target is None


def test_cloud_cost_kpi_is_all_cost_allocated_or_not(scenario):
    value = kpis.cloud_cost(MARCH, KpiFilters())
    assert_money_equal(value.value, "500.00")
    assert_money_equal(value.previous, "400.00")
    assert value.unit == "USD" and value.direction == "down"
    by_env = kpis.cloud_cost(MARCH, KpiFilters(environment="prod"))
    assert_money_equal(by_env.value, "300.10")  # alpha prod 100.10 + beta prod 200.00
    assert kpis.cloud_cost(parse_period("2025-01", today=date(2026, 4, 2)), KpiFilters()).value is None


def test_monthly_trend_and_breakdowns_come_from_the_rollups(scenario):
    months = reports.trailing_months(MARCH, 3)
    assert [m.key for m in months] == ["2026-01", "2026-02", "2026-03"]
    monthly = reports.monthly_figures(months)
    alpha = monthly.points(scenario.alpha.pk)
    assert [p.units for p in alpha] == [None, Decimal(1000), Decimal(1500)]
    assert_money_equal(alpha[1].unit_cost, "0.10")
    assert_money_equal(alpha[2].unit_cost, "0.12")
    assert reports.monthly_weighted_changes(monthly)[2] == pytest.approx(Decimal("0.05"))
    by_env = {g.label: g.total for g in reports.cost_breakdown(MARCH.start, MARCH.end, "environment")}
    # prod 100.10 + 200.00; dev 49.90; no environment: the GPU node 50, the shared 80, the sandbox 20.
    assert set(by_env) == {"Production", "Development", "No environment"}
    assert_money_equal(by_env["Production"], "300.10")
    assert_money_equal(by_env["Development"], "49.90")
    assert_money_equal(by_env["No environment"], "150.00")


def test_both_headline_kpis_are_registered_for_the_overview():
    from apps.kpis.registry import headline_kpis

    found = {d.key: d for d in headline_kpis()}
    assert found["unit_cost"].compute is kpis.unit_cost
    assert found["cloud_cost"].compute is kpis.cloud_cost
    assert found["unit_cost"].order < found["cloud_cost"].order


def test_overview_tile_of_the_weighted_change_does_not_claim_a_missing_previous_period(scenario, exec_client):
    """The all-services unit cost tile shows a change against the previous period as its value: it must not
    also say there is no previous period; a month with no earlier data still says so on the cost tile."""

    def tile(html: str, key: str) -> str:
        return html.split(f'data-kpi="{key}"', 1)[1].split('<a class="tile"', 1)[0]

    march = exec_client.get("/?period=2026-03").content.decode()
    weighted = reports.unit_cost_report(MARCH).weighted_change * 100
    assert f'data-value="{weighted}"' in tile(march, kpis.UNIT_COST)
    assert "% change vs February 2026" in tile(march, kpis.UNIT_COST)
    assert "no previous period" not in tile(march, kpis.UNIT_COST)
    february = exec_client.get("/?period=2026-02").content.decode()
    assert "no previous period" in tile(february, kpis.CLOUD_COST)


def test_overview_marks_a_period_that_is_not_over(scenario, exec_client, monkeypatch):
    """While March is not over, its cloud cost (a sum over the month) is not coloured as better or worse
    than all of February, and says so; once March is over it compares as usual."""
    from apps.core import context_processors

    def tile(html: str, key: str) -> str:
        return html.split(f'data-kpi="{key}"', 1)[1].split('<a class="tile"', 1)[0]

    monkeypatch.setattr(context_processors.timezone, "localdate", lambda: date(2026, 3, 20))
    during = exec_client.get("/?period=2026-03").content.decode()
    assert "March 2026</span> to date (day 20 of 31)" in during
    cost = tile(during, kpis.CLOUD_COST)
    assert '<span class="delta ">' in cost and "vs all of February 2026 (not over yet)" in cost
    assert "not over yet" not in tile(during, kpis.UNIT_COST)  # a ratio compares like with like

    monkeypatch.setattr(context_processors.timezone, "localdate", lambda: date(2026, 4, 2))
    after = exec_client.get("/?period=2026-03").content.decode()
    assert "to date" not in after.split("</p>", 1)[0]
    cost = tile(after, kpis.CLOUD_COST)
    assert ('<span class="delta bad">' in cost or '<span class="delta good">' in cost) and "vs previous" in cost
