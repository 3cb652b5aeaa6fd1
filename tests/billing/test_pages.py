"""The unit cost and cost explorer pages, allocation rules and units of service, as people use them."""

import csv
import io
import re
from datetime import date, timedelta
from decimal import Decimal
from html import unescape
from types import SimpleNamespace

import pytest
from django.urls import reverse

from apps.accounts.roles import Role
from apps.billing import reports, services
from apps.billing.models import AllocationRule, BillingLineItem, CostRollup, Reallocation, UnitVolume
from apps.billing.rollups import refresh_periods
from tests.factories import ServiceFactory

from .money import assert_money_equal
from .test_unit_cost import MARCH, build_scenario

pytestmark = pytest.mark.django_db

UNIT_COST = reverse("billing:unit-cost")
EXPLORER = reverse("billing:explorer")


@pytest.fixture
def scenario(tmp_path):
    return build_scenario(tmp_path)


@pytest.fixture
def cfo(role_client):
    return role_client(Role.EXECUTIVE)


@pytest.fixture
def admin(role_client):
    return role_client(Role.ADMIN)


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def _cells(html: str, service: str) -> str:
    match = re.search(rf'<tr data-service="{service}">(.*?)</tr>', html)
    assert match, f"no row for {service}"
    return match.group(1)


def test_unit_cost_page_shows_each_service_with_change_unallocated_share_and_charts(scenario, cfo):
    html = _text(cfo.get(UNIT_COST, {"period": "2026-03"}))
    alpha, beta = _cells(html, "alpha"), _cells(html, "beta")
    assert "180.00" in alpha and "1,500" in alpha and "0.1200" in alpha and "+20.0 %" in alpha
    assert "300.00" in beta and "2,000" in beta and "0.1500" in beta
    assert "30.00" in alpha  # its share of the shared account
    assert "per 1,000 predictions" in alpha
    assert 'data-service="gamma"' not in html  # nothing to show for it
    assert re.search(r'data-testid="unallocated">.*?4\.0 %', html)
    assert re.search(r'data-testid="weighted-change">\s*\+5\.0 %', html)
    assert "February 2026" in html
    for figure in ("fig-trend", "fig-unit-costs"):
        assert f'id="{figure}"' in html
    # The trend and breakdowns follow the costliest service, beta: its prod 200 and its 50 + 50 without one.
    breakdown = re.search(r'data-testid="breakdown-environment">(.*?)</table>', html).group(1)
    assert re.findall(r"<td>([^<]+)</td>", breakdown) == ["Production", "No environment"]
    assert "200.00" in breakdown and "100.00" in breakdown
    # The shared account's first day (Tuesday 10 March) gives beta 50.00 where its Tuesdays cost nothing.
    anomalies = re.search(r'data-testid="anomaly-table">(.*?)</table>', html).group(1)
    assert "Tue 10 Mar" in anomalies and "Beta" in anomalies and "+50.00" in anomalies


def test_unit_cost_page_switches_cost_type_and_trend_service_with_htmx(scenario, cfo):
    response = cfo.get(
        UNIT_COST,
        {"period": "2026-03", "cost": "billed", "service": "beta"},
        headers={"HX-Request": "true", "HX-Target": "unit-cost-body"},
    )
    html = _text(response)
    assert "<html" not in html and 'id="unit-cost-body"' in html
    assert "203.75" in _cells(html, "alpha")  # BilledCost, shared spread by direct cost
    assert "Beta: cost, units and unit cost" in html
    assert "BilledCost (as invoiced)" in html


def test_unit_cost_export_has_every_figure_of_the_table(scenario, cfo):
    response = cfo.get(reverse("billing:unit-cost-export"), {"period": "2026-03"})
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="unit-cost-2026-03.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    alpha = next(r for r in rows if r["service"] == "alpha")
    assert alpha["unit"] == "1,000 predictions" and alpha["currency"] == "USD" and alpha["units"] == "1500"
    assert_money_equal(alpha["allocated_cost"], "180")
    assert_money_equal(alpha["shared_cost"], "30")
    assert_money_equal(alpha["unit_cost"], "0.12")
    assert_money_equal(alpha["previous_unit_cost"], "0.1")
    assert alpha["unit_cost_change_percent"] == "20"
    totals = {r["service"]: r["allocated_cost"] for r in rows if r["service"].startswith("(")}
    assert_money_equal(totals["(unallocated)"], "20")
    assert_money_equal(totals["(all cost)"], "500")


def test_pages_without_billing_data_say_which_source_feeds_them(cfo, users):
    for url in (UNIT_COST, EXPLORER):
        html = _text(cfo.get(url))
        assert 'data-testid="empty-state"' in html and "Billing sources" in html


def _queries(client, url, params) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, params).status_code == 200
    return len(captured)


def test_pages_aggregate_in_the_database_whatever_the_number_of_services(scenario, cfo):
    before = {url: _queries(cfo, url, {"period": "2026-03"}) for url in (UNIT_COST, EXPLORER)}
    assert before[UNIT_COST] <= 30 and before[EXPLORER] <= 16
    # Four more services with cost every day of both months and units: not one query more.
    for n in range(4):
        service = ServiceFactory(slug=f"extra-{n}")
        for day in (MARCH.start + timedelta(days=i) for i in range(-28, 31)):
            CostRollup.objects.create(
                day=day, source=scenario.source, billing_period_start=day.replace(day=1), service=service,
                provider="AWS", charge_category="Usage", billed_cost=Decimal(10), effective_cost=Decimal(10),
            )  # fmt: skip
            UnitVolume.objects.create(service=service, day=day, units=Decimal(5))
    assert {url: _queries(cfo, url, {"period": "2026-03"}) for url in (UNIT_COST, EXPLORER)} == before


def test_explorer_groups_cost_by_any_dimension_over_time(scenario, cfo):
    html = _text(cfo.get(EXPLORER, {"period": "2026-03", "group_by": "environment", "grain": "month"}))
    table = re.search(r'data-testid="explorer-table">(.*?)</table>', html).group(1)
    assert re.findall(r"<th[^>]*>([^<]+)</th>", table)[:5] == [
        "Month",
        "Production",
        "No environment",
        "Development",
        "Total",
    ]
    # Largest first: prod 300.10, no environment 150.00 (GPU node 50 + shared 80 + sandbox 20), dev 49.90.
    assert "Mar 2026" in table and "300.10" in table and "49.90" in table and "500.00" in table
    assert 'id="fig-explorer"' in html
    assert re.search(r'data-testid="cloud-cost">.*?500\.00 USD', html)


def test_explorer_filters_and_htmx_fragment(scenario, cfo):
    response = cfo.get(
        EXPLORER,
        {"period": "2026-03", "group_by": "service", "grain": "day", "service": "unallocated"},
        headers={"HX-Request": "true", "HX-Target": "explorer-results"},
    )
    html = _text(response)
    assert "<html" not in html and 'id="explorer-results"' in html
    assert re.search(r'data-testid="explorer-total">.*?20\.00 USD', html)  # the sandbox alone
    assert "Fri 20 Mar" in html


def test_explorer_refuses_unknown_filters_with_a_message_and_shows_the_default(scenario, cfo):
    html = _text(cfo.get(EXPLORER, {"period": "2026-03", "group_by": "colour"}, follow=True))
    assert "group_by" in html and "colour" in html and "not one of the available choices" in html
    assert "Cost by service per day" in html


def test_explorer_export(scenario, cfo):
    response = cfo.get(reverse("billing:explorer-export"), {"period": "2026-03", "group_by": "provider"})
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["day", "provider", "group", "currency", "effective_cost"]
    assert_money_equal(sum(Decimal(r[4]) for r in rows[1:]), "500.00")
    assert {r[1] for r in rows[1:]} == {"AWS"}


# --- Allocation rules --------------------------------------------------------------------------------------


def _rule_data(**overrides) -> dict:
    data = {
        "name": "Sandbox to alpha",
        "order": "100",
        "enabled": "on",
        "match": "sub_account",
        "tag_key": "",
        "value": "sandbox",
        "service": "",
        "environment": "",
        "location": "",
        "spread": "direct_cost",
        "weights": "",
    }
    data.update(overrides)
    return data


def test_rules_page_lists_rules_in_order_and_only_admins_get_buttons(scenario, cfo, admin):
    html = _text(cfo.get(reverse("billing:rules"), {"period": "2026-03"}))
    names = re.findall(r'data-rule="([^"]+)"', html)
    assert names == ["Shared account", "GPU nodes", "Alpha", "Beta"]
    assert "Add a rule" not in html and ">Edit<" not in html
    assert re.search(r'data-testid="unallocated">.*?4\.0 %', html)
    assert "Add a rule" in _text(admin.get(reverse("billing:rules")))


def test_preview_shows_what_a_rule_would_claim_and_saves_nothing(scenario, admin):
    rules_before = AllocationRule.objects.count()
    rollups_before = list(CostRollup.objects.values_list("service_id", "effective_cost").order_by("pk"))
    data = _rule_data(service=str(scenario.alpha.pk))
    response = admin.post(reverse("billing:rule-preview"), data, headers={"HX-Request": "true"})
    html = _text(response)
    assert "<html" not in html
    assert re.search(r'data-testid="preview-claims"><strong>1</strong> line item', html)
    assert re.search(r'data-testid="preview-unallocated">20\.00 USD \(1 item\)', html)
    # A rule placed first takes what later rules claim today, in every stored period: alpha's tagged items
    # (March 100.10 and 49.90, February 100.00) and the GPU node tagged alpha (50.00).
    first = _rule_data(match="tag", tag_key="service", value="alpha", order="1", service=str(scenario.beta.pk))
    html = _text(admin.post(reverse("billing:rule-preview"), first, headers={"HX-Request": "true"}))
    assert re.search(r'data-testid="preview-claims"><strong>4</strong> line items', html)
    assert re.search(r'data-testid="preview-effective">300\.00 USD', html)
    assert "Alpha: 3 items, 250.00 USD" in html and "GPU nodes: 1 item, 50.00 USD" in html
    assert 'data-testid="preview-sample"' in html and "gpu-node-7" in html
    # Behind the tag rules, the same rule claims nothing: they match first.
    html = _text(admin.post(reverse("billing:rule-preview"), {**first, "order": "200"}, headers={"HX-Request": "true"}))
    assert "<strong>0</strong> line items (4 match; earlier rules take the other 4)" in html
    assert AllocationRule.objects.count() == rules_before
    assert list(CostRollup.objects.values_list("service_id", "effective_cost").order_by("pk")) == rollups_before


SHARED_BY_WEIGHTS = {"shared": "on", "spread": "weights"}


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"match": "resource", "value": "gpu-("}, "value", "'gpu-(' is not a valid regular expression"),
        ({"match": "tag", "tag_key": "cost__centre", "value": "x"}, "tag_key", "contains '__'"),
        ({"match": "tag", "tag_key": "", "value": "x"}, "tag_key", "needs the tag's key"),
        (SHARED_BY_WEIGHTS | {"weights": "alpha=1, nope=2"}, "weights", "'nope' is not a known service"),
        (SHARED_BY_WEIGHTS | {"weights": "alpha=0"}, "weights", "the weight '0' of alpha is not a number above 0"),
        (SHARED_BY_WEIGHTS | {"weights": ""}, "weights", "needs weights"),
        ({"shared": "on", "spread": "even", "weights": "alpha=1"}, "weights", "only used when the spread is"),
        ({"shared": "on", "service": "alpha"}, "service", "leave the service empty"),
        ({"service": ""}, "service", "choose the service this rule assigns cost to"),
        ({"value": ""}, "value", "give the value to compare"),
    ],
)
def test_bad_rules_are_refused_with_what_is_wrong_and_nothing_changes(scenario, admin, overrides, field, message):
    overrides = dict(overrides)
    if overrides.get("service") == "alpha":
        overrides["service"] = str(scenario.alpha.pk)
    elif overrides.get("shared"):
        overrides.setdefault("service", "")
    data = _rule_data(service=str(scenario.alpha.pk)) | overrides
    rollups_before = CostRollup.objects.count()
    response = admin.post(reverse("billing:rule-create"), data)
    assert response.status_code == 200
    errors = re.findall(rf'data-field="{field}">([^<]+)<', response.content.decode())
    assert any(message in e.replace("&#x27;", "'") for e in errors), errors
    assert not AllocationRule.objects.filter(name="Sandbox to alpha").exists()
    assert CostRollup.objects.count() == rollups_before
    # The preview says the same.
    preview = _text(admin.post(reverse("billing:rule-preview"), data)).replace("&#x27;", "'")
    assert message in preview and 'data-testid="preview-errors"' in preview


def test_saving_a_rule_queues_a_reallocation_the_pages_follow_and_deleting_it_gives_the_cost_back(
    scenario, admin, cfo, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as sent:
        response = admin.post(reverse("billing:rule-create"), _rule_data(service=str(scenario.alpha.pk)))
    assert response.status_code == 302 and response["Location"] == reverse("billing:rules")
    assert len(sent) == 1  # the worker's task, sent once the rule is committed
    # Until a worker has re-allocated, the figures are those of the earlier rules, and the pages say so.
    assert_money_equal(reports.unit_cost_report(MARCH).totals.unallocated, "20.00")
    status_url = reverse("billing:reallocation-status")
    page = _text(admin.get(reverse("billing:rules")))
    assert f'hx-get="{status_url}" hx-trigger="every 1s"' in page
    assert "Re-allocation queued: waiting for a worker" in page and "after rule Sandbox to alpha added" in page
    unit_cost = _text(cfo.get(reverse("billing:unit-cost"), {"period": "2026-03"}))
    assert 'data-testid="reallocating"' in unit_cost and "a worker is re-allocating the stored cost" in unit_cost

    periods = len(set(BillingLineItem.objects.values_list("source_id", "billing_period_start")))
    queued = Reallocation.objects.filter(pk=Reallocation.objects.get(status=Reallocation.Status.QUEUED).pk)
    queued.update(status=Reallocation.Status.RUNNING, periods_done=1, periods_total=periods)  # a worker at work
    fragment = _text(cfo.get(status_url))
    assert "<html" not in fragment and "every 1s" in fragment
    assert f"1 of {periods} billing periods re-allocated and rolled up" in fragment
    queued.update(status=Reallocation.Status.QUEUED)

    services.reallocations_run_pending()  # what the worker runs
    fragment = _text(cfo.get(status_url))
    assert "hx-trigger" not in fragment and 'data-status="succeeded"' in fragment  # done: polling stops
    assert f"({periods} billing periods) after rule Sandbox to alpha added" in fragment
    assert 'data-testid="reallocating"' not in _text(cfo.get(reverse("billing:unit-cost"), {"period": "2026-03"}))
    report = reports.unit_cost_report(MARCH)
    assert_money_equal(report.totals.unallocated, "0")
    alpha = next(r for r in report.rows if r.service.slug == "alpha")
    # alpha direct 150 + 20 = 170; shared 80 x 170 / 420, stored to 18 places (the remainder goes to beta).
    assert_money_equal(alpha.current.cost, Decimal(170) + (Decimal(80) * 170 / 420).quantize(Decimal("1e-18")))

    rule = AllocationRule.objects.get(name="Sandbox to alpha")
    response = admin.post(reverse("billing:rule-delete", args=[rule.pk]))
    assert response.status_code == 302
    services.reallocations_run_pending()
    assert_money_equal(reports.unit_cost_report(MARCH).totals.unallocated, "20.00")
    assert Reallocation.objects.first().reason == "rule Sandbox to alpha deleted"


def test_a_failed_reallocation_is_shown_and_an_admin_can_start_another(scenario, admin, cfo, monkeypatch):
    services.allocation_rule_save(rule=AllocationRule.objects.get(name="GPU nodes"))
    calls = []

    def fail_on_the_second_period(**kwargs):
        calls.append(kwargs)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        refresh_periods(**kwargs)

    monkeypatch.setattr(services, "refresh_periods", fail_on_the_second_period)
    with pytest.raises(RuntimeError):
        services.reallocations_run_pending()
    failed = Reallocation.objects.get(status=Reallocation.Status.FAILED)
    assert (failed.status, failed.periods_done) == ("failed", 1) and "disk full" in failed.error
    html = _text(cfo.get(reverse("billing:rules")))
    assert "Re-allocation after rule GPU nodes changed failed: RuntimeError: disk full" in html
    assert 'data-testid="reallocate-button"' not in html  # executives read; only admins act
    assert 'data-testid="reallocate-button"' in _text(admin.get(reverse("billing:rules")))
    monkeypatch.undo()

    assert admin.post(reverse("billing:reallocate")).status_code == 302
    [again] = services.reallocations_run_pending()
    assert again.status == "succeeded" and again.reason == "re-allocation asked for on the rules page"
    assert again.requested_by.role == Role.ADMIN


def test_editing_a_rule_keeps_its_weights_readable(scenario, admin):
    rule = AllocationRule.objects.get(name="Shared account")
    data = _rule_data(name="Shared account", order="10", match="sub_account", value="shared-acct", shared="on")
    data.update(spread="weights", weights="alpha=1\nbeta=3")
    assert admin.post(reverse("billing:rule-edit", args=[rule.pk]), data).status_code == 302
    rule.refresh_from_db()
    assert rule.weights == {"alpha": 1, "beta": 3}
    assert "alpha=1, beta=3" in admin.get(reverse("billing:rule-edit", args=[rule.pk])).content.decode()
    services.reallocations_run_pending()
    report = reports.unit_cost_report(MARCH)
    assert_money_equal(next(r for r in report.rows if r.service.slug == "beta").current.shared, "60.00")


# --- Units of service ----------------------------------------------------------------------------------------


def _upload(name: str, text: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def test_units_page_imports_a_csv_and_shows_units_per_service(scenario, admin):
    text = "service,date,units\nalpha,2026-03-03,250\nbeta,2026-03-03,10.5\n"
    response = admin.post(reverse("billing:units"), {"file": _upload("units.csv", text)}, follow=True)
    html = _text(response)
    assert "units.csv: 2 days imported (2 new, 0 changed)" in html
    assert UnitVolume.objects.get(service=scenario.beta, day="2026-03-03").units == Decimal("10.5")
    page = _text(admin.get(reverse("billing:units"), {"period": "2026-03"}))
    assert "1,750" in _cells(page, "alpha")  # 600 + 900 + 250


def test_a_bad_units_file_is_refused_row_by_row_and_nothing_is_stored(scenario, admin):
    before = UnitVolume.objects.count()
    text = "service,date,units\nalpha,2026-03-04,10\nnope,2026-03-04,5\nbeta,04/03/2026,5\nbeta,2026-03-05,-3\n"
    html = unescape(_text(admin.post(reverse("billing:units"), {"file": _upload("bad.csv", text)})))
    assert "Nothing was imported" in html
    assert "bad.csv row 3, column service: 'nope' is not a known service slug" in html
    assert "bad.csv row 4, column date: '04/03/2026' is not a date (expected YYYY-MM-DD)" in html
    assert "bad.csv row 5, column units: '-3' is not a number >= 0" in html
    assert UnitVolume.objects.count() == before
    html = _text(admin.post(reverse("billing:units"), {"file": _upload("empty.csv", "")}))
    assert "The submitted file is empty" in html
    html = _text(admin.post(reverse("billing:units"), {"file": _upload("cols.csv", "service,day,count\n")}))
    assert "missing column(s) date, units" in html
    assert UnitVolume.objects.count() == before


def test_only_admins_import_units(scenario, cfo):
    response = cfo.post(reverse("billing:units"), {"file": _upload("units.csv", "service,date,units\n")})
    assert response.status_code == 403
    assert 'data-testid="units-form"' not in cfo.get(reverse("billing:units")).content.decode()


def test_preview_without_javascript_and_a_confirmed_htmx_delete(scenario, admin):
    data = _rule_data(service=str(scenario.alpha.pk), action="preview")
    html = _text(admin.post(reverse("billing:rule-create"), data))
    assert re.search(r'data-testid="preview-claims"><strong>1</strong> line item', html)
    assert not AllocationRule.objects.filter(name="Sandbox to alpha").exists()  # previewed, not saved

    rule = AllocationRule.objects.get(name="Alpha")
    response = admin.post(reverse("billing:rule-delete", args=[rule.pk]), headers={"HX-Request": "true"})
    assert response.status_code == 200 and response["HX-Redirect"] == reverse("billing:rules")
    assert not AllocationRule.objects.filter(pk=rule.pk).exists()
    services.reallocations_run_pending()  # what the worker runs
    # alpha's tagged 150.00 is unallocated now (the GPU node still goes to beta by its resource rule).
    assert_money_equal(reports.unit_cost_report(MARCH).totals.unallocated, "170.00")


@pytest.mark.parametrize(
    "model", ["billingsource", "billingimport", "allocationrule", "reallocation", "unitvolume", "costrollup"]
)
def test_admin_site_lists_billing_records(scenario, admin, model):
    assert admin.get(reverse(f"admin:billing_{model}_changelist")).status_code == 200


def test_deleting_a_rule_in_the_admin_site_reallocates(scenario, role_client, users):
    from django.contrib.admin.sites import site

    from apps.billing.models import AllocationRule as Rule

    rule = Rule.objects.get(name="Alpha")
    site._registry[Rule].delete_model(request=SimpleNamespace(user=users[Role.ADMIN]), obj=rule)
    [done] = services.reallocations_run_pending()  # what the worker runs
    assert done.reason == "rule Alpha deleted" and done.requested_by == users[Role.ADMIN]
    assert_money_equal(reports.unit_cost_report(MARCH).totals.unallocated, "170.00")


def test_explorer_says_when_the_period_is_not_over(scenario, cfo, monkeypatch):
    from apps.core import context_processors

    monkeypatch.setattr(context_processors.timezone, "localdate", lambda: date(2026, 3, 20))
    html = _text(cfo.get(EXPLORER, {"period": "2026-03"}))
    stat = html.split('data-testid="cloud-cost">', 1)[1].split("</div></div>", 1)[0]
    assert stat.startswith("Total cloud cost, March 2026 to date<span>") and "in all of February 2026" in stat
    monkeypatch.setattr(context_processors.timezone, "localdate", lambda: date(2026, 4, 2))
    html = _text(cfo.get(EXPLORER, {"period": "2026-03"}))
    stat = html.split('data-testid="cloud-cost">', 1)[1].split("</div></div>", 1)[0]
    assert stat.startswith("Total cloud cost, March 2026<span>") and "in February 2026" in stat
    assert "all of" not in stat
