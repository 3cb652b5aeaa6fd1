"""CSV import: the event API's rules, whole file or nothing, errors by file, row, column and value."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.accounts.roles import Role
from apps.adoption.models import Event
from tests.factories import UserFactory

from .factories import make_catalog

pytestmark = pytest.mark.django_db
HEADER = "event_id,product,user_id,event,timestamp,location,role,rating,properties\n"
GOOD = (
    HEADER
    + ",alpha,emp-1,trial_requested,2025-03-01T09:00:00Z,store-0001,clerk,,\n"
    + ',alpha,emp-1,alpha_used,2025-03-02 10:15:00,store-0001,clerk,,"{""shift"": ""early""}"\n'
    + "0b7a4c5e-2f1d-4c7b-9b1e-8c2d3e4f5a6b,beta,emp-2,rating_submitted,"
    + "2025-03-03T08:00:00+01:00,store-0003,manager,4,\n"
)


@pytest.fixture
def catalog(db):
    return make_catalog()


def _upload(client, user, text: str, name: str = "march.csv"):
    client.force_login(user)
    return client.post(reverse("adoption:import"), {"file": SimpleUploadedFile(name, text.encode(), "text/csv")})


def test_a_pm_imports_a_csv_and_importing_it_again_adds_nothing(client, catalog):
    response = _upload(client, catalog["owner"], GOOD)
    assert response.status_code == 302
    assert Event.objects.count() == 3
    used = Event.objects.get(name="alpha_used")
    assert used.properties == {"shift": "early", "location": "store-0001", "role": "clerk"}
    assert used.source == "csv"
    rating = Event.objects.get(name="rating_submitted")
    assert (rating.rating, rating.timestamp.hour) == (4, 7)  # +01:00 stored as UTC

    again = _upload(client, catalog["owner"], GOOD)
    assert again.status_code == 302
    messages = [str(m) for m in again.wsgi_request._messages]
    assert messages[-1] == "march.csv: 0 events imported, 3 already there."
    assert Event.objects.count() == 3


def test_every_bad_row_is_named_and_nothing_is_imported(client, catalog):
    text = (
        HEADER
        + ",alpha,emp-1,trial_requested,2025-03-01T09:00:00Z,store-0001,clerk,,\n"
        + ",alpha,emp-1,alpha_used,yesterday,store-0001,clerk,,\n"
        + ",alpha,emp-1,rating_submitted,2025-03-01T09:00:00Z,,,five,\n"
        + ",alpha,emp-1,alpha_used,2025-03-01T09:00:00Z,store-0042,,,\n"
        + ",alpha,emp-1,alpha_used,2025-03-01T09:00:00Z,,,,{not json}\n"
        + ",gamma,emp-1,gamma_used,2025-03-01T09:00:00Z,,,,\n"
    )
    response = _upload(client, catalog["owner"], text)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was imported." in html
    for expected in [
        "march.csv, row 3, column timestamp: &#x27;yesterday&#x27; is not an ISO 8601 date-time",
        "march.csv, row 4, column rating: rating_submitted needs a whole number 1-5, got &#x27;five&#x27;",
        "march.csv, row 5, column location: unknown location code &#x27;store-0042&#x27;",
        "march.csv, row 6, column properties: is not valid JSON",
        "march.csv, row 7, column product: &#x27;gamma&#x27; is not one of your products",
    ]:
        assert expected in html, expected
    assert "row 2," not in html
    assert Event.objects.count() == 0


def test_a_missing_column_is_named(client, catalog):
    response = _upload(client, catalog["owner"], "product,user_id,when\nalpha,emp-1,2025-03-01\n")
    assert response.status_code == 400
    assert "march.csv: the header row lacks column(s) event, timestamp" in response.content.decode()


def test_a_short_row_is_reported(client, catalog):
    response = _upload(
        client, catalog["owner"], "product,user_id,event,timestamp\nalpha,emp-1,alpha_used,2025-03-01,extra\n"
    )
    assert response.status_code == 400
    assert "march.csv, row 2: has 5 fields; the header has 4" in response.content.decode()


def test_an_admin_imports_any_product_and_an_executive_cannot_open_the_page(client, catalog):
    admin = UserFactory(username="boss", role=Role.ADMIN)
    text = HEADER + ",gamma,emp-9,gamma_used,2025-03-01T09:00:00Z,,,,\n"
    assert _upload(client, admin, text).status_code == 302
    assert Event.objects.filter(product__slug="gamma").count() == 1
    client.force_login(UserFactory(username="exec-x", role=Role.EXECUTIVE))
    assert client.get(reverse("adoption:import")).status_code == 403
