"""The sidebar marks the section a page belongs to, sub-pages included."""

import re

import pytest

from apps.accounts.roles import Role


def _active(response) -> list[str]:
    html = response.content.decode()
    return re.findall(r'<a class="nav-link active" aria-current="page" href="[^"]*" data-nav="([^"]+)"', html)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", ["kpis:overview"]),
        ("/costs/", ["billing:unit-cost"]),
        ("/costs/explorer/", ["billing:explorer"]),
        ("/costs/sources/", ["billing:unit-cost"]),
        ("/alerts/rules/", ["alerts:list"]),
        ("/alerts/models/", ["alerts:model-health"]),
        ("/settings/", ["core:settings"]),
        ("/settings/audit/", ["audit:list"]),
        ("/accounts/me/", []),
    ],
)
def test_one_entry_is_marked_for_a_page_and_its_sub_pages(role_client, path, expected):
    response = role_client(Role.ADMIN).get(path)
    assert response.status_code == 200
    assert _active(response) == expected
