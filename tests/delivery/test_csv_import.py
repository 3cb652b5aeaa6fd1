"""CSV import: all or nothing per file, row-level errors that say what to fix, and idempotent on the source's ids."""

from decimal import Decimal

import pytest

from apps.delivery.models import Change, DeliveryImport, Deployment, Feature, Incident
from apps.delivery.services import DeliveryImportRejected, delivery_csv_import

from .factories import sha

pytestmark = pytest.mark.django_db

A, B, C = sha("a"), sha("b"), sha("c")

DEPLOYMENTS_CSV = f"""deployment_id,service,environment,deployed_at,status,commit,changes
dep-1,svc-a,prod,2026-02-04T10:00:00Z,success,{A},{B}
dep-2,svc-a,production,2026-02-05 11:30:00,failure,{C},
dep-3,svc-b,uat,2026-02-06T09:00:00+01:00,success,{C},
""".encode()

FEATURES_CSV = f"""feature_id,title,service,team,effort,effort_unit,changes
F-1,"Weekend uplift, v2",svc-a,,24.5,hours,{A} {B}
F-2,Points feature,svc-b,beta,3,points,{C}
""".encode()


def rows(model) -> list[tuple]:
    return sorted(model.objects.values_list("pk", "updated_at"))


def test_a_deployments_file_is_imported_with_aliases_and_time_zones(catalog, admin_user):
    result = delivery_csv_import(kind="deployments", content=DEPLOYMENTS_CSV, filename="d.csv", actor=admin_user)
    assert (result.status, result.rows, result.created, result.updated, result.unchanged) == ("applied", 3, 3, 0, 0)
    dep1, dep2, dep3 = Deployment.objects.order_by("external_id")
    assert dep2.environment.slug == "prod" and dep2.status == "failure"  # "production" is the prod environment
    assert dep2.deployed_at.isoformat() == "2026-02-05T11:30:00+00:00"  # no offset: UTC
    assert dep3.deployed_at.isoformat() == "2026-02-06T08:00:00+00:00"
    assert sorted(c.sha for c in dep1.changes.all()) == sorted([A, B])
    assert Change.objects.get(sha=A).committed_at is None  # known by SHA; its time can come later
    assert dep1.source.slug == "csv" and result.uploaded_by == admin_user


def test_importing_the_same_file_again_changes_nothing(catalog):
    delivery_csv_import(kind="deployments", content=DEPLOYMENTS_CSV, filename="d.csv")
    delivery_csv_import(kind="features", content=FEATURES_CSV, filename="f.csv")
    before = rows(Deployment), rows(Feature), rows(Change), Deployment.changes.through.objects.count()

    again = delivery_csv_import(kind="deployments", content=DEPLOYMENTS_CSV, filename="d.csv")
    again_features = delivery_csv_import(kind="features", content=FEATURES_CSV, filename="f.csv")

    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert (again_features.created, again_features.updated, again_features.unchanged) == (0, 0, 2)
    assert (rows(Deployment), rows(Feature), rows(Change), Deployment.changes.through.objects.count()) == before


def test_a_changed_row_updates_in_place_and_is_counted(catalog):
    delivery_csv_import(kind="features", content=FEATURES_CSV, filename="f.csv")
    edited = FEATURES_CSV.replace(b"24.5,hours", b"30,hours")
    result = delivery_csv_import(kind="features", content=edited, filename="f.csv")
    assert (result.created, result.updated, result.unchanged) == (0, 1, 1)
    assert Feature.objects.get(external_id="F-1").effort_hours == Decimal("30")
    assert Feature.objects.count() == 2


def test_the_same_id_from_another_source_is_another_record(catalog):
    delivery_csv_import(kind="features", content=FEATURES_CSV, filename="f.csv", source_slug="jira")
    delivery_csv_import(kind="features", content=FEATURES_CSV, filename="f.csv", source_slug="linear")
    assert Feature.objects.filter(external_id="F-1").count() == 2


def rejected(kind: str, content: bytes, **kwargs) -> DeliveryImportRejected:
    counts = [m.objects.count() for m in (Feature, Deployment, Change, Incident)]
    with pytest.raises(DeliveryImportRejected) as caught:
        delivery_csv_import(kind=kind, content=content, filename="bad.csv", **kwargs)
    assert [m.objects.count() for m in (Feature, Deployment, Change, Incident)] == counts, "something was written"
    record = DeliveryImport.objects.latest("created_at")
    assert record.status == "rejected" and record.errors == [e.as_dict() for e in caught.value.errors]
    return caught.value


def errors_of(exc) -> list[tuple]:
    return [(e.row, e.column, e.value) for e in exc.errors]


def test_bad_rows_are_refused_with_row_column_value_and_what_was_expected(catalog):
    content = f"""feature_id,title,service,team,effort,effort_unit,changes
F-1,Good,svc-a,,8,hours,{A}
F-2,Bad effort,svc-a,,ten,hours,
F-3,Unknown service,svc-x,,8,hours,
F-4,Bad sha,svc-a,,8,hours,abc123
F-1,Duplicate,svc-a,,8,hours,
,No id,svc-a,,8,days,
""".encode()
    exc = rejected("features", content)
    assert errors_of(exc) == [
        (3, "effort", "ten"),
        (4, "service", "svc-x"),
        (5, "changes", "abc123"),
        (6, "feature_id", "F-1"),
        (7, "feature_id", ""),
        (7, "effort_unit", "days"),
    ]
    by_column = {(e.row, e.column): e.expected for e in exc.errors}
    assert by_column[(3, "effort")] == "a number ≥ 0 with at most 2 decimal places"
    assert "svc-a" in by_column[(4, "service")] and "svc-b" in by_column[(4, "service")]  # the known slugs
    assert "(40 or 64 hexadecimal characters)" in by_column[(5, "changes")]
    assert "row 2 has it too" in by_column[(6, "feature_id")]
    assert by_column[(7, "effort_unit")] == "one of hours, points"
    assert "bad.csv was not imported" in str(exc) and "nothing was written" in str(exc)
    assert "row 3, effort: 'ten', expected a number" in str(exc)


def test_story_points_need_the_teams_conversion(catalog):
    content = b"feature_id,title,service,team,effort,effort_unit\nF-9,Pointy,svc-a,alpha,5,points\n"
    exc = rejected("features", content)
    assert errors_of(exc) == [(2, "effort_unit", "points")]
    assert "team 'alpha' has no hours-per-story-point conversion" in exc.errors[0].expected


def test_a_misspelt_or_missing_column_refuses_the_file(catalog):
    exc = rejected("features", b"feature_id,title,service,efort\nF-1,x,svc-a,8\n")
    assert errors_of(exc) == [(1, "efort", "efort"), (1, "effort", "")]
    assert exc.errors[0].expected.startswith("one of the columns feature_id, title, service")
    assert exc.errors[1].expected == "a column named 'effort' (required)"


def test_structural_problems_are_named(catalog):
    wrong_width = rejected("changes", f"commit,committed_at\n{A},2026-02-01T10:00:00Z,extra\n".encode())
    assert errors_of(wrong_width)[0][:2] == (2, "(row)") and "2 fields like the header, not 3" in str(wrong_width)
    not_utf8 = rejected("changes", "commit,committed_at\n\xe9\n".encode("latin-1"))
    assert errors_of(not_utf8) == [(1, "(file)", "bad.csv")] and "UTF-8" in not_utf8.errors[0].expected
    header_only = rejected("changes", b"commit,committed_at\n")
    assert errors_of(header_only) == [(2, "(rows)", "")]
    empty = rejected("changes", b"")
    assert errors_of(empty) == [(1, "(header)", "")]
    bad_time = rejected("changes", f"commit,committed_at\n{A},yesterday\n".encode())
    assert errors_of(bad_time) == [(2, "committed_at", "yesterday")]
    assert "ISO 8601" in bad_time.errors[0].expected


def test_deployments_with_unknown_environment_or_status_are_refused(catalog):
    content = f"""deployment_id,service,environment,deployed_at,status,commit
d-1,svc-a,moon,2026-02-04T10:00:00Z,success,{A}
d-2,svc-a,prod,2026-02-04T10:00:00Z,rolled-back,{A}
""".encode()
    exc = rejected("deployments", content)
    assert errors_of(exc) == [(2, "environment", "moon"), (3, "status", "rolled-back")]
    assert "dev, prod, uat" in exc.errors[0].expected


def test_incidents_must_link_to_a_known_deployment_and_end_after_they_start(catalog):
    delivery_csv_import(kind="deployments", content=DEPLOYMENTS_CSV, filename="d.csv", source_slug="ci")
    content = b"""incident_id,service,started_at,resolved_at,deployment_id,deployment_source
I-1,svc-a,2026-02-04T11:00:00Z,2026-02-04T10:00:00Z,,
I-2,svc-a,2026-02-04T11:00:00Z,,dep-404,ci
I-3,svc-a,2026-02-04T11:00:00Z,,dep-1,nowhere
I-4,svc-a,2026-02-04T11:00:00Z,,dep-1,
"""
    exc = rejected("incidents", content, source_slug="pager")
    assert errors_of(exc) == [
        (2, "resolved_at", "2026-02-04T10:00:00+00:00"),
        (3, "deployment_id", "dep-404"),
        (4, "deployment_source", "nowhere"),
        (5, "deployment_id", "dep-1"),  # no deployment_source: looked up in the incident's own source
    ]
    assert "at or after started_at" in exc.errors[0].expected
    assert "from source 'ci'" in exc.errors[1].expected

    good = content.splitlines()[0] + b"\nI-4,svc-a,2026-02-04T11:00:00Z,,dep-1,ci\n"
    delivery_csv_import(kind="incidents", content=good, filename="i.csv", source_slug="pager")
    assert Incident.objects.get(external_id="I-4").deployment.external_id == "dep-1"


def test_an_incident_update_with_the_same_id_resolves_it(catalog):
    header = b"incident_id,service,started_at,resolved_at\n"
    delivery_csv_import(kind="incidents", content=header + b"I-7,svc-a,2026-02-04T11:00:00Z,\n", filename="i.csv")
    result = delivery_csv_import(
        kind="incidents", content=header + b"I-7,svc-a,2026-02-04T11:00:00Z,2026-02-04T12:15:00Z\n", filename="i.csv"
    )
    assert (result.created, result.updated) == (0, 1)
    assert Incident.objects.get().resolved_at.isoformat() == "2026-02-04T12:15:00+00:00"


def test_a_rejected_file_leaves_earlier_imports_untouched(catalog):
    delivery_csv_import(kind="features", content=FEATURES_CSV, filename="f.csv")
    before = rows(Feature)
    bad = FEATURES_CSV.replace(b"F-2,Points feature,svc-b", b"F-2,Points feature,svc-zzz").replace(b"24.5", b"99")
    rejected("features", bad)
    assert rows(Feature) == before
    assert Feature.objects.get(external_id="F-1").effort == Decimal("24.5")
