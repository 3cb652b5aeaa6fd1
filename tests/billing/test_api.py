"""The billing API: the same numbers as the pages, admin-only writes, and specific errors that write nothing."""

import csv
import io
import os
from datetime import date
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.accounts.roles import Role
from apps.accounts.services import api_token_create
from apps.billing import reports, services
from apps.billing.models import AllocationRule, BillingImport, BillingLineItem, BillingSource, CostRollup, UnitVolume
from tests.factories import ServiceFactory

from .money import assert_money_equal
from .test_anomalies import _rollups, _week
from .test_unit_cost import MARCH, MARCH_ITEMS, build_scenario, focus_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenario(tmp_path):
    return build_scenario(tmp_path)


@pytest.fixture
def cfo(role_client):
    return role_client(Role.EXECUTIVE)


@pytest.fixture
def admin(role_client):
    return role_client(Role.ADMIN)


def _json(client, method, url, data=None, **kwargs):
    return getattr(client, method)(url, data=data, content_type="application/json", **kwargs)


# --- Reports ------------------------------------------------------------------------------------------------


def test_unit_costs_match_the_page_and_its_export(scenario, cfo):
    body = cfo.get(reverse("billing-unit-costs"), {"period": "2026-03"}).json()
    assert (body["period"], body["previous_period"], body["cost"], body["currency"]) == (
        "2026-03",
        "2026-02",
        "effective",
        "USD",
    )
    assert [s["service"] for s in body["services"]] == ["beta", "alpha"]
    alpha = body["services"][1]
    assert (alpha["unit"], alpha["units"], alpha["units_source"], alpha["rag"]) == (
        "1,000 predictions",
        "1500",
        "imported",
        None,
    )
    assert_money_equal(alpha["allocated_cost"], "180")
    assert_money_equal(alpha["shared_cost"], "30")
    assert_money_equal(alpha["unit_cost"], "0.12")
    assert_money_equal(alpha["change_percent"], "20")
    assert_money_equal(body["weighted_change_percent"], "5")
    assert_money_equal(body["unallocated_cost"], "20")
    assert_money_equal(body["unallocated_percent"], "4")
    export = cfo.get(reverse("billing:unit-cost-export"), {"period": "2026-03"}).content.decode()
    exported = {r["service"]: r for r in csv.DictReader(io.StringIO(export))}
    for item in body["services"]:
        assert item["unit_cost"] == exported[item["service"]]["unit_cost"]
        assert item["allocated_cost"] == exported[item["service"]]["allocated_cost"]


def test_unit_costs_in_billed_cost_and_bad_parameters(scenario, cfo):
    body = cfo.get(reverse("billing-unit-costs"), {"period": "2026-03", "cost": "billed"}).json()
    assert_money_equal(next(s for s in body["services"] if s["service"] == "alpha")["allocated_cost"], "203.75")
    response = cfo.get(reverse("billing-unit-costs"), {"period": "March"})
    assert response.status_code == 400
    assert "period 'March' is not understood; use YYYY-MM (month)" in response.json()["period"][0]
    response = cfo.get(reverse("billing-unit-costs"), {"cost": "list"})
    assert response.status_code == 400 and response.json() == {"cost": ['"list" is not a valid choice.']}


def test_costs_by_any_dimension_and_grain_as_in_the_explorer(scenario, cfo):
    body = cfo.get(reverse("billing-costs"), {"period": "2026-03", "group_by": "environment", "grain": "month"}).json()
    assert body["buckets"] == ["2026-03-01"] and body["grain"] == "month"
    series = {s["label"]: s for s in body["series"]}
    assert list(series) == ["Production", "No environment", "Development"]
    assert_money_equal(series["Production"]["total"], "300.10")
    assert_money_equal(series["No environment"]["values"][0], "150")
    assert_money_equal(body["total"], "500")
    explorer = reports.explore(MARCH.start, MARCH.end, group_by="environment", grain="month")
    assert [s.label for s in explorer.series] == list(series)

    body = cfo.get(
        reverse("billing-costs"), {"period": "2026-03", "group_by": "service", "service": "unallocated"}
    ).json()
    assert body["grain"] == "day" and len(body["buckets"]) == 31
    assert [s["label"] for s in body["series"]] == ["Unallocated"]
    assert_money_equal(body["total"], "20")
    response = cfo.get(reverse("billing-costs"), {"group_by": "colour", "grain": "hour"})
    assert response.status_code == 400
    assert response.json() == {
        "group_by": ['"colour" is not a valid choice.'],
        "grain": ['"hour" is not a valid choice.'],
    }


def test_anomalies_are_the_ones_the_page_lists(cfo):
    source = BillingSource.objects.create(name="anomalies")
    promo = ServiceFactory(slug="promo", name="Promotions")
    _rollups(source, _week() | {date(2026, 3, 2): Decimal(400), date(2026, 3, 3): Decimal(150)}, service=promo)
    body = cfo.get(reverse("billing-anomalies"), {"period": "2026-03"}).json()
    assert (body["min_excess"], body["min_percent"]) == ("50", "20")
    assert [(a["day"], a["dimension"], a["label"], a["direction"]) for a in body["anomalies"]] == [
        ("2026-03-02", "service", "Promotions", "spike"),
        ("2026-03-02", "sub_account", "AWS 111", "spike"),
    ]
    spike = body["anomalies"][0]
    assert (spike["expected"], spike["actual"], spike["excess"], spike["lower"], spike["upper"]) == (
        "100",
        "400",
        "300",
        "93.3283",
        "106.6717",
    )
    only = cfo.get(reverse("billing-anomalies"), {"period": "2026-03", "dimension": "service"}).json()
    assert [a["dimension"] for a in only["anomalies"]] == ["service"]
    assert cfo.get(reverse("billing-anomalies"), {"period": "2026-03", "min_excess": "301"}).json()["anomalies"] == []
    page = cfo.get(reverse("billing:unit-cost"), {"period": "2026-03"}).content.decode()
    assert "Mon 2 Mar" in page and "+300.00" in page


# --- Sources and imports -------------------------------------------------------------------------------------


def test_sources_are_created_changed_and_pulled_by_admins(admin, cfo, django_capture_on_commit_callbacks):
    data = {"name": "AWS payer", "format": "focus", "location": "/data/aws/focus/", "pull_every_minutes": 30}
    response = _json(admin, "post", reverse("billing-source-list"), data)
    assert response.status_code == 201 and response.json()["status"] == "never"
    pk = response.json()["id"]
    assert _json(cfo, "post", reverse("billing-source-list"), data | {"name": "other"}).status_code == 403
    response = _json(admin, "patch", reverse("billing-source-detail", args=[pk]), {"enabled": False})
    assert response.status_code == 200 and response.json()["enabled"] is False
    with django_capture_on_commit_callbacks() as queued:
        response = _json(admin, "post", reverse("billing-source-pull", args=[pk]))
    assert response.status_code == 202 and len(queued) == 1
    uploads_only = BillingSource.objects.create(name="uploads only")
    response = _json(admin, "post", reverse("billing-source-pull", args=[uploads_only.pk]))
    assert response.status_code == 400 and "has no location to pull from" in response.json()["detail"]


NOT_ABSOLUTE = "'relative/path' is not an absolute path (expected a folder or glob starting with /, or an http(s) URL)"
FTP = "ftp:// is not supported; give a local folder, a glob such as /data/exports/*.csv.gz, or an http(s) URL"
OUTSIDE = (
    "'{}' is outside the folders billing exports may be read from (%s); "
    "the operator adds folders with OPSPORTAL_BILLING_LOCAL_ROOTS"
)
AUTH_NOT_URL = "an authentication variable is only used for http(s) URLs; this source's location is not one"


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"location": "relative/path"}, {"location": [NOT_ABSOLUTE]}),
        ({"location": "ftp://host/x.csv"}, {"location": [FTP]}),
        ({"location": "/data/x", "auth_env_var": "TOKEN"}, {"auth_env_var": [AUTH_NOT_URL]}),
        ({"location": "/etc/*"}, {"location": [OUTSIDE.format("/etc/*")]}),
        ({"location": "/proc/self/environ"}, {"location": [OUTSIDE.format("/proc/self/environ")]}),
        (
            {"location": "/data/../etc/passwd"},
            {"location": ["'/data/../etc/passwd' holds a '..' component; give the folder's own path"]},
        ),
        ({"format": "excel"}, {"format": ['"excel" is not a valid choice.']}),
        ({"pull_every_minutes": 0}, {"pull_every_minutes": ["Ensure this value is greater than or equal to 5."]}),
    ],
)
def test_a_bad_source_is_refused_with_specific_errors(admin, changes, errors, settings):
    if "location" in errors and "outside" in errors["location"][0]:
        roots = ", ".join(os.path.realpath(r) for r in settings.BILLING_LOCAL_ROOTS)
        errors = {"location": [errors["location"][0].replace("(%s)", f"({roots})")]}
    data = {"name": "New", "format": "auto", "location": "https://exports.example.com/a.csv"} | changes
    response = _json(admin, "post", reverse("billing-source-list"), data)
    assert response.status_code == 400 and response.json() == errors
    assert not BillingSource.objects.exists()


@pytest.fixture
def uploads(settings, tmp_path):
    settings.UPLOAD_DIR = tmp_path / "uploads"


def test_upload_by_multipart_queues_an_import(scenario, admin, tmp_path, uploads, django_capture_on_commit_callbacks):
    content = focus_file(tmp_path, "again.csv", MARCH_ITEMS).read_bytes()
    with django_capture_on_commit_callbacks() as queued:
        response = admin.post(
            reverse("billing-import-list"),
            {"source": scenario.source.pk, "file": SimpleUploadedFile("again.csv", content)},
        )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["status"], body["trigger"], body["started_by"], body["filename"]) == (
        "queued",
        "upload",
        "adminuser",
        "again.csv",
    )
    assert body["progress"] == {"rows": 0, "percent": 0} and len(queued) == 1
    detail = admin.get(reverse("billing-import-detail", args=[body["id"]])).json()
    assert detail["checksum"] == body["checksum"] and len(detail["checksum"]) == 64


ZIP = "book.xlsx is a ZIP archive (an Excel workbook?); expected CSV (optionally gzip-compressed) or Parquet"


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"file": ("empty.csv", b"")}, {"file": ["The submitted file is empty."]}),
        ({"file": ("book.xlsx", b"PK\x03\x04...")}, {"file": [ZIP]}),
        ({"source": 999_999}, {"source": ['Invalid pk "999999" - object does not exist.']}),
        ({"format": "xls"}, {"format": ['"xls" is not a valid choice.']}),
    ],
)
def test_a_bad_upload_is_refused_and_nothing_is_stored(scenario, admin, uploads, settings, data, errors):
    before = BillingImport.objects.count()
    name, content = data.get("file", ("ok.csv", b"BilledCost\n1\n"))
    payload = {"source": data.get("source", scenario.source.pk), "file": SimpleUploadedFile(name, content)}
    if "format" in data:
        payload["format"] = data["format"]
    response = admin.post(reverse("billing-import-list"), payload)
    assert response.status_code == 400 and response.json() == errors
    assert BillingImport.objects.count() == before
    assert not settings.UPLOAD_DIR.exists() or not any(settings.UPLOAD_DIR.rglob("*.*"))


# --- Allocation rules ---------------------------------------------------------------------------------------


def _unallocated() -> Decimal:
    return reports.unit_cost_report(MARCH).totals.unallocated


def test_rules_are_created_previewed_changed_and_deleted_with_reallocation(scenario, admin):
    rule = {"name": "Sandbox", "order": 90, "match": "sub_account", "value": "sandbox", "service": "alpha"}
    preview = _json(admin, "post", reverse("billing-rule-preview"), rule).json()
    assert (preview["matches"], preview["claims"], preview["unallocated_line_items"]) == (1, 1, 1)
    assert_money_equal(preview["unallocated_effective_cost"], "20")
    assert AllocationRule.objects.count() == 4  # the preview saves nothing

    response = _json(admin, "post", reverse("billing-rule-list"), rule)
    assert response.status_code == 201, response.json()
    reallocation = response.json()["reallocation"]
    assert (reallocation["status"], reallocation["reason"]) == ("queued", "rule Sandbox added")
    assert_money_equal(_unallocated(), "20")  # a worker has not re-allocated yet
    follow = reverse("billing-reallocation-detail", args=[reallocation["id"]])
    assert admin.get(follow).json()["status"] == "queued"
    services.reallocations_run_pending()  # what the worker runs
    done = admin.get(follow).json()
    periods = len(set(BillingLineItem.objects.values_list("source_id", "billing_period_start")))
    assert (done["status"], done["periods_done"], done["periods_total"], done["percent"]) == (
        "succeeded",
        periods,
        periods,
        100,
    )
    assert_money_equal(_unallocated(), "0")
    pk = response.json()["id"]

    shared = AllocationRule.objects.get(name="Shared account")
    response = _json(
        admin, "patch", reverse("billing-rule-detail", args=[shared.pk]), {"spread": "weights", "weights": {"beta": 1}}
    )
    assert response.status_code == 200 and response.json()["weights"] == {"beta": 1}
    assert response.json()["reallocation"]["reason"] == "rule Shared account changed"
    services.reallocations_run_pending()
    beta = next(r for r in reports.unit_cost_report(MARCH).rows if r.service.slug == "beta")
    assert_money_equal(beta.current.shared, "80")  # all of the shared account, by weight

    assert admin.delete(reverse("billing-rule-detail", args=[pk])).status_code == 204
    services.reallocations_run_pending()
    assert_money_equal(_unallocated(), "20")
    listed = admin.get(reverse("billing-reallocation-list"), {"status": "succeeded"}).json()["results"]
    assert listed[0]["reason"] == "rule Sandbox deleted"


def test_a_reallocation_is_asked_for_by_the_api_and_changes_join_the_waiting_one(scenario, admin, cfo):
    assert cfo.post(reverse("billing-reallocation-list")).status_code == 403
    first = admin.post(reverse("billing-reallocation-list"))
    assert first.status_code == 202 and first.json()["status"] == "queued"
    second = admin.post(reverse("billing-reallocation-list")).json()
    assert (second["id"], second["changes"]) == (first.json()["id"], 2)  # joined, not queued twice
    [done] = services.reallocations_run_pending()
    assert done.pk == second["id"] and done.status == "succeeded"
    assert admin.post(reverse("billing-reallocation-list")).json()["id"] != done.pk  # finished: a new one


BAD_REGEX = "'gpu-[' is not a valid regular expression: unterminated character set at position 4"
DOUBLE_UNDERSCORE = (
    "the tag key 'a__b' contains '__', which tag lookups read as a path separator, so no rule can match it; "
    "match on another tag, the sub-account or the resource instead"
)
NO_WEIGHTS = "a shared rule spread by fixed weights needs weights, e.g. price-forecast=2, promotions=1"
SHARED = {"service": None, "shared": True, "spread": "weights"}


@pytest.mark.parametrize(
    ("rule", "errors"),
    [
        ({"match": "resource", "value": "gpu-["}, {"value": [BAD_REGEX]}),
        ({"match": "tag", "tag_key": "a__b", "value": "x"}, {"tag_key": [DOUBLE_UNDERSCORE]}),
        (SHARED | {"weights": {"nope": 1}}, {"weights": ["'nope' is not a known service (known: alpha, beta, gamma)"]}),
        (SHARED, {"weights": [NO_WEIGHTS]}),
        (
            SHARED | {"weights": [1, 2]},
            {"weights": ['expected an object such as {"price-forecast": 2, "promotions": 1}']},
        ),
        ({"service": "nope"}, {"service": ["Object with slug=nope does not exist."]}),
        ({"match": "colour"}, {"match": ['"colour" is not a valid choice.']}),
    ],
)
def test_a_bad_rule_is_refused_with_what_is_wrong_and_nothing_changes(scenario, admin, rule, errors):
    rollups = list(CostRollup.objects.values_list("service_id", "effective_cost").order_by("pk"))
    data = {"name": "Bad", "order": 5, "match": "sub_account", "value": "sandbox", "service": "alpha"} | rule
    for url in (reverse("billing-rule-list"), reverse("billing-rule-preview")):
        response = _json(admin, "post", url, data)
        assert response.status_code == 400 and response.json() == errors
    assert not AllocationRule.objects.filter(name="Bad").exists()
    assert list(CostRollup.objects.values_list("service_id", "effective_cost").order_by("pk")) == rollups


def test_a_refused_change_leaves_the_stored_rule_as_it_was(scenario, admin):
    rule = AllocationRule.objects.get(name="GPU nodes")
    response = _json(admin, "patch", reverse("billing-rule-detail", args=[rule.pk]), {"value": "gpu-("})
    assert response.status_code == 400
    rule.refresh_from_db()
    assert rule.value == "^gpu-"


# --- Units of service --------------------------------------------------------------------------------------


def test_units_are_stored_all_or_nothing_with_per_item_errors(scenario, admin, cfo):
    before = UnitVolume.objects.count()
    items = [
        {"service": "alpha", "date": "2026-03-03", "units": "250"},
        {"service": "nope", "date": "2026-03-03", "units": "5"},
        {"service": "beta", "date": "03/03/2026", "units": "-1"},
        {"service": "alpha", "date": "2026-03-03", "units": "7"},
        "alpha,2026-03-04,9",
    ]
    response = _json(admin, "post", reverse("billing-units"), items)
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "4 of 5 items are invalid; nothing was stored"
    assert body["errors"] == [
        {"index": 1, "errors": {"service": ["'nope' is not a known service slug"]}},
        {
            "index": 2,
            "errors": {
                "date": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."],
                "units": ["Ensure this value is greater than or equal to 0."],
            },
        },
        {"index": 3, "errors": {"date": ["alpha on 2026-03-03 is also item 0; send each day once"]}},
        {"index": 4, "errors": {"item": ["expected an object with service, date and units"]}},
    ]
    assert UnitVolume.objects.count() == before

    response = _json(
        admin,
        "post",
        reverse("billing-units"),
        [*items[:1], {"service": "beta", "date": "2026-03-31", "units": "2500.5"}],
    )
    assert response.status_code == 200 and response.json() == {"rows": 2, "created": 1, "updated": 1}
    assert UnitVolume.objects.get(service=scenario.beta, day="2026-03-31").units == Decimal("2500.5")
    listed = cfo.get(reverse("billing-units"), {"service__slug": "beta"}).json()
    assert {(r["date"], r["units"], r["unit"]) for r in listed["results"]} >= {("2026-03-31", "2500.5", "checkout")}
    # Unit cost follows: beta 300 / 2,500.5.
    beta = next(r for r in reports.unit_cost_report(MARCH).rows if r.service.slug == "beta")
    assert_money_equal(beta.unit_cost, Decimal(300) / Decimal("2500.5"))


@pytest.mark.parametrize("payload", [{}, [], {"service": "alpha", "date": "2026-03-01", "units": 1}])
def test_units_need_a_non_empty_list(scenario, admin, payload):
    response = _json(admin, "post", reverse("billing-units"), payload)
    assert response.status_code == 400
    assert response.json()["detail"] == "expected a non-empty JSON list of {service, date, units} objects"


def test_a_read_token_never_writes_units(scenario, users, client):
    _, key = api_token_create(user=users[Role.ADMIN], name="reader")
    response = client.post(
        reverse("billing-units"),
        data=[{"service": "alpha", "date": "2026-03-01", "units": "1"}],
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {key}",
    )
    assert response.status_code == 403 and response.json()["detail"] == "This API token has the read scope only."
    assert client.get(reverse("billing-unit-costs"), HTTP_AUTHORIZATION=f"Token {key}").status_code == 200


def test_a_regular_expression_must_also_suit_the_database(scenario, admin):
    from django.db import connection

    # Python's named groups are not PostgreSQL syntax; SQLite matches with Python's own engine.
    data = {"name": "Named", "order": 5, "match": "resource", "value": "(?P<pool>gpu)-", "service": "beta"}
    response = _json(admin, "post", reverse("billing-rule-preview"), data)
    if connection.vendor == "postgresql":
        assert response.status_code == 400
        assert "is not a regular expression the database accepts" in response.json()["value"][0]
    else:
        assert response.status_code == 200 and response.json()["claims"] == 1  # gpu-node-7, before the GPU rule
