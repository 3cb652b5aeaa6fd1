"""Every model registered in the admin site lists, searches and opens its add form for a portal admin."""

import pytest
from django.contrib import admin
from django.urls import reverse

REGISTERED = sorted(
    ((m._meta.app_label, m._meta.model_name, bool(a.search_fields)) for m, a in admin.site._registry.items()),
)


@pytest.mark.parametrize(("app_label", "model_name", "searchable"), REGISTERED)
def test_admin_changelist_and_add_form_render(admin_client_portal, app_label, model_name, searchable):
    changelist = reverse(f"admin:{app_label}_{model_name}_changelist")
    assert admin_client_portal.get(changelist).status_code == 200
    if searchable:
        assert admin_client_portal.get(changelist, {"q": "north"}).status_code == 200
    add = admin_client_portal.get(reverse(f"admin:{app_label}_{model_name}_add"))
    assert add.status_code in (200, 403)  # 403: a read-only admin (e.g. events arrive only through the API)


def test_kpi_targets_are_in_the_admin_site(admin_client_portal):
    assert ("kpis", "target", True) in REGISTERED
