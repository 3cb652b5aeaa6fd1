"""htmx and Plotly are served from the installed packages' own files: no CDN, no copy in the repo."""

import pytest
from django.contrib.staticfiles import finders


def test_plotly_js_is_found_in_the_plotly_package():
    path = finders.find("plotly/plotly.min.js")
    assert path and "site-packages/plotly/package_data" in path.replace("\\", "/")


def test_htmx_is_found_in_the_django_htmx_package():
    path = finders.find("django_htmx/htmx-2.min.js")
    assert path and "django_htmx" in path


@pytest.mark.django_db
def test_pages_reference_only_local_scripts(exec_client):
    html = exec_client.get("/").content.decode()
    assert "/static/django_htmx/htmx" in html
    assert "https://" not in html and "http://" not in html
