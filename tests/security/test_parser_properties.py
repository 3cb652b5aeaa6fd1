"""Hostile files for the adoption and delivery CSV imports: any input is imported or refused cleanly.

For arbitrary bytes, text in other encodings, BOMs, NULs, quotes, huge fields and CSV-shaped files with
random headers and cells, an import either succeeds or is refused with its own error (naming the row and
column for row problems, the file for file problems) — never another exception — and a refused import
writes nothing. The billing formats have the same properties in tests/billing/test_formats.py.
"""

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from apps.accounts.roles import Role
from apps.adoption.models import Event
from apps.adoption.services import CSV_COLUMNS, events_import_csv
from apps.core.exceptions import ApplicationError
from apps.delivery.models import Change, DeliveryImport, Deployment, Feature, Incident
from apps.delivery.records import SCHEMAS
from apps.delivery.services import DeliveryImportRejected, delivery_csv_import
from tests.adoption.factories import make_catalog
from tests.factories import EnvironmentFactory, ServiceFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

PROPERTIES = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

HUGE = "x" * 200_000  # past the csv module's default field limit (131,072 characters)
AWKWARD = st.sampled_from(
    ["", " ", '"', '""', "'", ",", "\n", "\r\n", "\r", "\x00", "\ufeff", "é", "😀", "\t", "=1+1", "null", "-1", "1e309"]
)
CELL = st.one_of(
    st.text(max_size=30),
    AWKWARD,
    st.just(HUGE),
    st.sampled_from(["2026-11-02T10:00:00Z", "2026-11-02 10:00", "2026-13-45", "0" * 40, "a" * 41, "alpha", "prod"]),
)
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1", "cp1252"])


def _csv_line(cells: list[str]) -> str:
    out = []
    for cell in cells:
        if any(c in cell for c in ',"\r\n'):
            cell = '"' + cell.replace('"', '""') + '"'
        out.append(cell)
    return ",".join(out)


@st.composite
def csv_files(draw, columns) -> bytes:
    """A CSV-shaped file: a header mixing real and made-up columns, rows of awkward cells, any encoding."""
    header = draw(st.lists(st.one_of(st.sampled_from(columns), st.text(max_size=12), AWKWARD), max_size=12))
    width = len(header)
    rows = draw(
        st.lists(
            st.lists(CELL, min_size=max(0, width - 1), max_size=width + 1),
            max_size=4,
        )
    )
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(_csv_line(r) for r in [header, *rows])
    if draw(st.booleans()):
        text += newline
    if draw(st.booleans()):
        # a stray unbalanced quote somewhere
        at = draw(st.integers(min_value=0, max_value=len(text)))
        text = text[:at] + '"' + text[at:]
    try:
        return text.encode(draw(ENCODINGS))
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


@st.composite
def nearly_valid_files(draw, header: list[str], good: dict[str, list[str]]) -> bytes:
    """The right header and mostly good values, with an awkward cell now and then: reaches the import itself."""
    rows = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        rows.append([draw(CELL if draw(st.integers(0, 9)) == 0 else st.sampled_from(good[c])) for c in header])
    text = "\n".join(_csv_line(r) for r in [header, *rows]) + "\n"
    return (draw(st.sampled_from(["", "\ufeff"])) + text).encode("utf-8", "surrogatepass")


def any_file(columns: list[str], header: list[str], good: dict[str, list[str]]):
    return st.one_of(
        st.binary(max_size=600),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
        csv_files(columns),
        nearly_valid_files(header, good),
        nearly_valid_files(header, good),
    )


STAMPS = ["2025-03-01T09:00:00Z", "2025-03-02 10:15:00", "2026-11-02T10:00:00+01:00"]
ADOPTION_GOOD = {
    "product": ["alpha", "beta"],
    "user_id": ["emp-1", "emp-2", " emp-3 "],
    "event": ["alpha_used", "trial_requested", "beta_done"],
    "timestamp": STAMPS,
    "location": ["", "store-0001", "region-north"],
}
SHAS = ["a" * 40, "b" * 40, "0123456789abcdef" * 2 + "01234567"]
DELIVERY_GOOD = {
    "features": {
        "feature_id": ["F-1", "F-2"],
        "title": ["Price tiles", "Faster search"],
        "service": ["alpha"],
        "effort": ["3", "0.5", "12.25"],
        "changes": [SHAS[0], f"{SHAS[0]} {SHAS[1]}"],
    },
    "deployments": {
        "deployment_id": ["D-1", "D-2"],
        "service": ["alpha"],
        "environment": ["prod", "production"],
        "deployed_at": STAMPS,
        "status": ["success", "failure"],
        "commit": SHAS,
    },
    "changes": {"commit": SHAS, "committed_at": STAMPS, "service": ["alpha", ""]},
    "incidents": {
        "incident_id": ["I-1", "I-2"],
        "service": ["alpha"],
        "title": ["Outage", ""],
        "started_at": STAMPS,
        "resolved_at": ["", *STAMPS],
    },
}


# --- Adoption events ----------------------------------------------------------------------------------------


@pytest.fixture
def adoption(db):
    catalog = make_catalog()
    return {"admin": UserFactory(username="importer", role=Role.ADMIN), "pm": catalog["owner"]}


@PROPERTIES
@given(data=any_file(list(CSV_COLUMNS), list(ADOPTION_GOOD), ADOPTION_GOOD), as_admin=st.booleans())
def test_adoption_csv_is_imported_or_refused_with_its_own_errors(adoption, data, as_admin):
    before = Event.objects.count()
    actor = adoption["admin"] if as_admin else adoption["pm"]
    try:
        result = events_import_csv(data, actor=actor, filename="upload.csv", schedule_refresh=False)
    except ApplicationError as exc:
        event("refused: file")
        assert str(exc).startswith("upload.csv: ")
        assert Event.objects.count() == before
        return
    event("imported" if result.ok else "refused: rows")
    if result.ok:
        assert Event.objects.count() - before == result.accepted
    else:
        assert Event.objects.count() == before
        for error in result.errors:
            assert error.index >= 2  # the row (the header is row 1)
            assert error.message


# --- Delivery ---------------------------------------------------------------------------------------------


@pytest.fixture
def delivery(db):
    EnvironmentFactory(slug="prod")
    ServiceFactory(slug="alpha", team=TeamFactory(slug="team-a"))


KIND_MODELS = {"features": Feature, "deployments": Deployment, "changes": Change, "incidents": Incident}


def _delivery_rows() -> int:
    return sum(m.objects.count() for m in (Feature, Deployment, Change, Incident))


@PROPERTIES
@given(data=st.data(), kind=st.sampled_from(sorted(SCHEMAS)))
def test_delivery_csv_is_imported_or_refused_with_its_own_errors(delivery, data, kind):
    good = {name: DELIVERY_GOOD[kind].get(name, [""]) for name in SCHEMAS[kind].required_names}
    content = data.draw(any_file(list(SCHEMAS[kind].names), list(good), good))
    before, before_kind = _delivery_rows(), KIND_MODELS[kind].objects.count()
    try:
        record = delivery_csv_import(kind=kind, content=content, filename="upload.csv")
    except DeliveryImportRejected as exc:
        event("refused")
        assert exc.errors, "a refusal lists what was refused"
        for error in exc.errors:
            as_dict = error.as_dict()
            assert as_dict["row"] >= 0 and as_dict["column"] and as_dict["expected"]
        assert str(exc).startswith("upload.csv was not imported")
        assert _delivery_rows() == before
        assert DeliveryImport.objects.filter(status=DeliveryImport.Status.REJECTED).exists()
        return
    event("imported")
    assert record.status == DeliveryImport.Status.APPLIED
    assert KIND_MODELS[kind].objects.count() - before_kind == record.created


# --- NUL characters in API batches ----------------------------------------------------------------------------
# PostgreSQL stores no NUL in text or JSON and refuses one even in a query's parameters, so each API that
# parses its own batches must refuse it as a value error (400), not fail on the database (500).

T = "2026-11-02T10:00:00Z"
# (url, the body's list key, a valid item, what makes it invalid)
EVENT = {"event_id": "0b7a4c5e-2f1d-4c7b-9b1e-8c2d3e4f5a6b", "product": "alpha", "user_id": "u", "event": "alpha_used"}
NUL_CASES = {
    "event product": ("/api/v1/events/batch/", "events", EVENT, {"product": "a\x00"}),
    "event user": ("/api/v1/events/batch/", "events", EVENT, {"user_id": "u\x00"}),
    "event properties": ("/api/v1/events/batch/", "events", EVENT, {"properties": {"k\x00": "v\x00"}}),
    "event location": ("/api/v1/events/batch/", "events", EVENT, {"properties": {"location": "s\x00"}}),
    "nps campaign": (
        "/api/v1/nps/responses/",
        "responses",
        {"campaign": "pulse", "user_id": "u", "score": 9},
        {"campaign": "\x00"},
    ),
    "nps comment": (
        "/api/v1/nps/responses/",
        "responses",
        {"campaign": "pulse", "user_id": "u", "score": 9},
        {"comment": "\x00"},
    ),
    "telemetry model": (
        "/api/v1/telemetry/",
        "points",
        {"metric": "request_count", "model": "m", "value": 1},
        {"model": "\x00"},
    ),
    "distribution model": (
        "/api/v1/alerts/distributions/",
        "distributions",
        {"model": "m", "samples": [1]},
        {"model": "\x00"},
    ),
    "distribution feature": (
        "/api/v1/alerts/distributions/",
        "distributions",
        {"model": "m", "samples": [1]},
        {"feature": "\x00"},
    ),
    "distribution category": (
        "/api/v1/alerts/distributions/",
        "distributions",
        {"model": "m"},
        {"categories": {"\x00": 1}},
    ),
    "delivery title": (
        "/api/v1/delivery/features/",
        "items",
        {"feature_id": "F-1", "service": "alpha"},
        {"title": "\x00"},
    ),
}


@pytest.mark.parametrize("case", sorted(NUL_CASES))
def test_a_nul_character_in_an_api_batch_is_refused_as_a_value_error(admin_user, case):
    from datetime import date

    from rest_framework.test import APIClient

    from apps.adoption.models import NpsResponse
    from apps.telemetry.models import Point
    from tests.adoption.factories import CampaignFactory
    from tests.telemetry.factories import ModelVersionFactory

    catalog = make_catalog()
    CampaignFactory(slug="pulse", product=catalog["products"]["alpha"], opens_on=date(2025, 1, 1))
    ModelVersionFactory(model__slug="m", version="1")
    url, key, item, bad = NUL_CASES[case]
    body = {key: [{"timestamp": T, **item, **bad}]}
    if key == "items":
        body["source"] = "api"
    client = APIClient()
    client.force_authenticate(admin_user)
    response = client.post(url, body, format="json")
    assert response.status_code == 400, response.content
    assert Event.objects.count() == NpsResponse.objects.count() == Point.objects.count() == _delivery_rows() == 0
