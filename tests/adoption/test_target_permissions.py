"""Who may change adoption targets: a PM only for products they own, admins everything, executives nothing."""

import html
from datetime import date

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from apps.accounts.roles import Role
from apps.adoption.services import adoption_target_set
from apps.kpis.models import Target
from tests.factories import UserFactory

from .factories import make_catalog

pytestmark = pytest.mark.django_db
MONTH = date(2026, 12, 1)


@pytest.fixture
def setup(client):
    pm = UserFactory(username="alpha-pm", role=Role.PRODUCT_MANAGER)
    other_pm = UserFactory(username="gamma-pm", role=Role.PRODUCT_MANAGER)
    catalog = make_catalog(owner=pm, other_owner=other_pm)
    admin = UserFactory(username="boss", role=Role.ADMIN)
    executive = UserFactory(username="cfo-test", role=Role.EXECUTIVE)
    own = adoption_target_set(actor=pm, kpi="demos", product=catalog["products"]["alpha"], month=MONTH, value=100)
    others = adoption_target_set(
        actor=other_pm, kpi="demos", product=catalog["products"]["gamma"], month=MONTH, value=50
    )
    org = adoption_target_set(actor=admin, kpi="mau", product=None, month=MONTH, value=1000)
    return {
        "pm": pm,
        "other_pm": other_pm,
        "admin": admin,
        "exec": executive,
        "own": own,
        "others": others,
        "org": org,
        **catalog,
    }


def _as(client, user):
    client.force_login(user)
    return client


def _form(product=None, value="120", kpi="demos"):
    return {
        "kpi": kpi,
        "product": product.pk if product else "",
        "month": MONTH.isoformat(),
        "value": value,
        "direction": "",
    }


def test_a_pm_sets_a_target_for_a_product_they_own(client, setup):
    response = _as(client, setup["pm"]).post(reverse("adoption:targets"), _form(setup["products"]["beta"]))
    assert response.status_code == 302
    assert Target.objects.get(product=setup["products"]["beta"]).value == 120


def test_a_pm_cannot_choose_a_product_they_do_not_own(client, setup):
    response = _as(client, setup["pm"]).post(
        reverse("adoption:targets"), _form(setup["products"]["gamma"], value="999")
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert Target.objects.get(pk=setup["others"].pk).value == 50


def test_a_pm_edits_their_own_target_by_id(client, setup):
    url = reverse("adoption:target-edit", args=[setup["own"].pk])
    pm = _as(client, setup["pm"])
    assert pm.get(url).status_code == 200
    assert pm.post(url, _form(setup["products"]["alpha"], value="130")).status_code == 302
    assert Target.objects.get(pk=setup["own"].pk).value == 130


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_pm_is_refused_another_pms_target_by_id(client, setup, method):
    url = reverse("adoption:target-edit", args=[setup["others"].pk])
    response = getattr(_as(client, setup["pm"]), method)(url, _form(setup["products"]["alpha"], value="1"))
    assert response.status_code == 403
    assert Target.objects.get(pk=setup["others"].pk).value == 50


def test_a_pm_cannot_move_their_target_onto_anothers_product(client, setup):
    # Even via the service, with a product picked outside the form.
    with pytest.raises(PermissionDenied) as exc:
        adoption_target_set(
            actor=setup["pm"],
            target=setup["own"],
            kpi="demos",
            product=setup["products"]["gamma"],
            month=MONTH,
            value=1,
        )
    assert "You do not own Gamma" in str(exc.value)


def test_a_pm_cannot_delete_another_pms_or_an_organisation_target(client, setup):
    pm = _as(client, setup["pm"])
    for target in (setup["others"], setup["org"]):
        assert pm.post(reverse("adoption:target-delete", args=[target.pk])).status_code == 403
    assert Target.objects.count() == 3
    assert pm.post(reverse("adoption:target-delete", args=[setup["own"].pk])).status_code == 302
    assert not Target.objects.filter(pk=setup["own"].pk).exists()


def test_an_executive_reads_targets_and_changes_nothing(client, setup):
    executive = _as(client, setup["exec"])
    page = executive.get(reverse("adoption:targets"))
    assert page.status_code == 200
    assert 'data-testid="target-form"' not in page.content.decode()
    assert executive.post(reverse("adoption:targets"), _form(setup["products"]["alpha"])).status_code == 403
    assert executive.get(reverse("adoption:target-edit", args=[setup["own"].pk])).status_code == 403
    assert executive.post(reverse("adoption:target-delete", args=[setup["own"].pk])).status_code == 403
    assert Target.objects.count() == 3


def test_an_admin_changes_any_target_and_sets_organisation_wide_ones(client, setup):
    admin = _as(client, setup["admin"])
    assert (
        admin.post(
            reverse("adoption:target-edit", args=[setup["others"].pk]), _form(setup["products"]["gamma"], value="55")
        ).status_code
        == 302
    )
    assert Target.objects.get(pk=setup["others"].pk).value == 55
    assert admin.post(reverse("adoption:targets"), _form(None, kpi="trainings", value="300")).status_code == 302
    assert Target.objects.get(kpi="trainings").product is None


def test_the_targets_page_offers_edit_buttons_only_where_allowed(client, setup):
    html = _as(client, setup["pm"]).get(reverse("adoption:targets")).content.decode()
    assert reverse("adoption:target-edit", args=[setup["own"].pk]) in html
    assert reverse("adoption:target-edit", args=[setup["others"].pk]) not in html
    assert reverse("adoption:target-edit", args=[setup["org"].pk]) not in html


# --- The same rules through the API --------------------------------------------------------------

API = "/api/v1/adoption/targets/"


def test_api_pm_creates_and_patches_own_targets_only(client, setup):
    pm = _as(client, setup["pm"])
    created = pm.post(
        API,
        {"kpi": "trainings", "product": "beta", "month": "2026-12-01", "value": "40"},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["direction"] == "up"
    refused = pm.post(
        API,
        {"kpi": "trainings", "product": "gamma", "month": "2026-12-01", "value": "40"},
        content_type="application/json",
    )
    assert refused.status_code == 403
    assert pm.patch(f"{API}{setup['own'].pk}/", {"value": "111"}, content_type="application/json").status_code == 200
    assert pm.patch(f"{API}{setup['others'].pk}/", {"value": "1"}, content_type="application/json").status_code == 403
    assert pm.delete(f"{API}{setup['others'].pk}/").status_code == 403
    org = pm.post(
        API, {"kpi": "mau", "product": None, "month": "2027-01-01", "value": "5"}, content_type="application/json"
    )
    assert org.status_code == 403
    assert Target.objects.get(pk=setup["own"].pk).value == 111
    assert Target.objects.get(pk=setup["others"].pk).value == 50


def test_api_executive_reads_but_cannot_write(client, setup):
    executive = _as(client, setup["exec"])
    assert len(executive.get(API).json()["results"]) == 3
    assert (
        executive.patch(f"{API}{setup['own'].pk}/", {"value": "1"}, content_type="application/json").status_code == 403
    )
    assert (
        executive.post(
            API,
            {"kpi": "mau", "product": "alpha", "month": "2026-12-01", "value": "5"},
            content_type="application/json",
        ).status_code
        == 403
    )


def test_api_refuses_a_value_out_of_range_with_a_reason(client, setup):
    response = _as(client, setup["pm"]).post(
        API,
        {"kpi": "avg_rating", "product": "alpha", "month": "2026-12-01", "value": "7"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "between 1 and 5" in response.json()["detail"]


# --- Every product-manager-owned object, by id, on pages and the API -------------------------------


def test_api_pm_cannot_move_their_own_target_onto_anothers_product_or_make_it_organisation_wide(client, setup):
    pm = _as(client, setup["pm"])
    url = f"{API}{setup['own'].pk}/"
    assert pm.patch(url, {"product": "gamma"}, content_type="application/json").status_code == 403
    assert pm.patch(url, {"product": None}, content_type="application/json").status_code == 403
    full = {"kpi": "demos", "product": "gamma", "month": "2026-12-01", "value": "1"}
    assert pm.put(url, full, content_type="application/json").status_code == 403
    own = Target.objects.get(pk=setup["own"].pk)
    assert (own.product, own.value) == (setup["products"]["alpha"], 100)


def test_api_pm_cannot_replace_or_delete_anothers_or_an_organisation_target(client, setup):
    pm = _as(client, setup["pm"])
    full = {"kpi": "demos", "product": "alpha", "month": "2026-12-01", "value": "1"}
    for target in (setup["others"], setup["org"]):
        assert pm.put(f"{API}{target.pk}/", full, content_type="application/json").status_code == 403
        assert pm.delete(f"{API}{target.pk}/").status_code == 403
    assert Target.objects.count() == 3
    assert Target.objects.get(pk=setup["others"].pk).product == setup["products"]["gamma"]


def test_page_pm_cannot_move_their_own_target_onto_anothers_product(client, setup):
    url = reverse("adoption:target-edit", args=[setup["own"].pk])
    response = _as(client, setup["pm"]).post(url, _form(setup["products"]["gamma"], value="5"))
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert Target.objects.get(pk=setup["own"].pk).product == setup["products"]["alpha"]


PRODUCTS_API = "/api/v1/catalog/products/"


@pytest.mark.parametrize("slug", ["alpha", "gamma"], ids=["own", "another-pms"])
def test_api_pm_cannot_change_products_not_even_their_own(client, setup, slug):
    """Products (their owner, name, usage events) are catalog configuration: admins change them."""
    pm = _as(client, setup["pm"])
    url = f"{PRODUCTS_API}{slug}/"
    assert pm.get(url).status_code == 200
    assert pm.patch(url, {"name": "Mine now"}, content_type="application/json").status_code == 403
    assert pm.delete(url).status_code == 403
    product = setup["products"][slug]
    product.refresh_from_db()
    assert product.name == slug.title()
    assert product.owner == (setup["pm"] if slug == "alpha" else setup["other_pm"])


def test_api_admin_changes_a_product(client, setup):
    response = _as(client, setup["admin"]).patch(
        f"{PRODUCTS_API}gamma/", {"name": "Gamma Vision"}, content_type="application/json"
    )
    assert response.status_code == 200
    setup["products"]["gamma"].refresh_from_db()
    assert setup["products"]["gamma"].name == "Gamma Vision"


def test_page_pm_cannot_open_an_nps_campaign_on_anothers_product(client, setup):
    from apps.adoption.models import NpsCampaign

    pm = _as(client, setup["pm"])
    data = {"name": "Q4 pulse", "opens_on": "2026-12-01"}
    response = pm.post(reverse("adoption:campaign-create"), {**data, "product": setup["products"]["gamma"].pk})
    assert response.status_code == 302
    assert not NpsCampaign.objects.exists()
    pm.post(reverse("adoption:campaign-create"), {**data, "product": setup["products"]["alpha"].pk})
    assert list(NpsCampaign.objects.values_list("product__slug", flat=True)) == ["alpha"]


def test_page_pm_cannot_import_events_of_anothers_product(client, setup):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.adoption.models import Event

    csv = (
        "product,user_id,event,timestamp\n"
        "alpha,emp-1,trial_started,2026-11-02T10:00:00Z\n"
        "gamma,emp-2,trial_started,2026-11-02T10:00:00Z\n"
    )
    upload = SimpleUploadedFile("events.csv", csv.encode(), content_type="text/csv")
    response = _as(client, setup["pm"]).post(reverse("adoption:import"), {"file": upload})
    assert response.status_code == 400
    assert "'gamma' is not one of your products" in html.unescape(response.content.decode())
    assert Event.objects.count() == 0  # the whole file is refused
