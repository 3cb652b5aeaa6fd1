"""Security headers and cookies on every page, the Content-Security-Policy, and templates it can enforce."""

import json
import re
from pathlib import Path

import pytest
from django.conf import settings

from tests.core.test_settings import PRODUCTION
from tests.utils import child_env, run_python

TEMPLATES = Path(settings.BASE_DIR) / "templates"


def _csp(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/costs/", "/capacity/", "/accounts/me/"])
def test_every_page_carries_the_security_headers(exec_client, path):
    response = exec_client.get(path)
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    policy = _csp(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval', no CDN
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    # Plotly writes <style> rules and style attributes on its SVG; styles cannot run code.
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]


@pytest.mark.django_db
def test_api_responses_carry_the_headers_too(exec_client):
    response = exec_client.get("/api/v1/me/")
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_session_and_csrf_cookies_are_http_only_and_same_site_lax(users, client):
    page = client.get("/accounts/login/")
    csrf = page.cookies["csrftoken"]
    assert csrf["samesite"] == "Lax"
    response = client.post("/accounts/login/", {"username": "exec", "password": "pw-for-tests"})
    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["httponly"] is True
    assert session["samesite"] == "Lax"
    assert int(session["max-age"]) == 12 * 3600


@pytest.mark.django_db
def test_the_api_docs_page_has_no_inline_script_and_loads_its_start_up_script(exec_client):
    page = exec_client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert _inline_scripts(html) == []
    assert "?script=" in html
    script = exec_client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


def test_production_sends_hsts_secure_cookies_and_redirects_to_https(tmp_path):
    """In production mode (no test relaxations): HSTS, HTTPS redirect, cookies only over HTTPS."""
    code = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
c = Client(HTTP_HOST="opsportal.example.com")
plain = c.get("/api/v1/me/")
secure = c.get("/api/v1/me/", secure=True)
print(json.dumps({
    "redirect": [plain.status_code, plain.get("Location")],
    "hsts": secure.get("Strict-Transport-Security"),
    "session_secure": settings.SESSION_COOKIE_SECURE,
    "csrf_secure": settings.CSRF_COOKIE_SECURE,
    "csp": secure.get("Content-Security-Policy"),
}))
"""
    env = child_env(**PRODUCTION, OPSPORTAL_VAR_DIR=str(tmp_path))
    result = run_python(code, env=env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["redirect"] == [301, "https://opsportal.example.com/api/v1/me/"]
    assert out["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert out["session_secure"] is True
    assert out["csrf_secure"] is True
    assert "script-src 'self'" in out["csp"]


def test_hsts_follows_the_environment(tmp_path):
    code = "import django; django.setup(); from django.conf import settings; print(settings.SECURE_HSTS_SECONDS)"
    env = child_env(**PRODUCTION, OPSPORTAL_VAR_DIR=str(tmp_path), DJANGO_SECURE_HSTS_SECONDS="600")
    result = run_python(code, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "600"


# --- Templates the policy can enforce -------------------------------------------------------------

SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[a-zA-Z][^>]*\s(on[a-z]+)\s*=", re.IGNORECASE | re.DOTALL)
JS_URL = re.compile(r"""(?:href|src|action|formaction)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


def _inline_scripts(html: str) -> list[str]:
    """<script> tags that would execute inline code: no src, and not a JSON data block."""
    found = []
    for match in SCRIPT_TAG.finditer(html):
        attrs = match.group(1)
        if "src=" in attrs or re.search(r"""type=["']application/(ld\+)?json["']""", attrs):
            continue
        found.append(match.group(0))
    return found


def _templates() -> list[Path]:
    return sorted(p for p in TEMPLATES.rglob("*.html") if p.is_file())


def test_templates_are_scanned():
    assert len(_templates()) > 40


@pytest.mark.parametrize("template", _templates(), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_no_template_has_inline_script_event_handler_or_javascript_url(template):
    html = template.read_text()
    assert _inline_scripts(html) == [], f"{template}: inline <script>; move the code to static/js/"
    assert EVENT_HANDLER.findall(html) == [], f"{template}: inline on* handler; bind it in static/js/"
    assert JS_URL.findall(html) == [], f"{template}: javascript: URL"


def test_the_scanner_finds_what_it_looks_for():
    assert _inline_scripts('<script>alert(1)</script><script src="/a.js"></script>') == ["<script>"]
    assert _inline_scripts('<script id="f" type="application/json">{}</script>') == []
    assert EVENT_HANDLER.findall('<button class="x" onclick="go()">') == ["onclick"]
    assert JS_URL.findall('<a href="javascript:void(0)">') != []
