"""Production mode: refuse to start without secrets; pass `check --deploy` with the documented variables."""

from tests.utils import child_env, run_manage

PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "opsportal.settings.base",
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "k3J9-production-like-secret-with-enough-length-and-variety-Zq81xYw0pL5mN7",
    "DJANGO_ALLOWED_HOSTS": "opsportal.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://opsportal.example.com",
    # The test settings relax these for the test client; production takes the secure defaults.
    "DJANGO_SECURE_SSL_REDIRECT": None,
    "DJANGO_SESSION_COOKIE_SECURE": None,
    "DJANGO_CSRF_COOKIE_SECURE": None,
    "DJANGO_ALLOW_ASYNC_UNSAFE": None,  # set for the browser tests' own process only
}


def test_check_deploy_reports_no_issues_with_production_variables():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=child_env(**PRODUCTION))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_refuses_to_start_without_a_secret_key():
    result = run_manage("check", env=child_env(**{**PRODUCTION, "DJANGO_SECRET_KEY": None}))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr  # a clear message, not a stack trace


def test_refuses_to_start_without_allowed_hosts():
    result = run_manage("check", env=child_env(**{**PRODUCTION, "DJANGO_ALLOWED_HOSTS": None}))
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS is not set" in result.stderr


def test_development_mode_runs_without_a_secret_key():
    env = child_env(**{**PRODUCTION, "DJANGO_DEBUG": "1", "DJANGO_SECRET_KEY": None, "DJANGO_ALLOWED_HOSTS": None})
    result = run_manage("check", env=env)
    assert result.returncode == 0, result.stderr


def test_the_settings_option_is_honoured_before_the_settings_load():
    env = child_env(**{**PRODUCTION, "DJANGO_SECRET_KEY": None, "DJANGO_ALLOWED_HOSTS": None})
    result = run_manage("check", "--settings=opsportal.settings.test", env=env)
    assert result.returncode == 0, result.stderr
    result = run_manage("check", "--settings", "opsportal.settings.test", env=env)
    assert result.returncode == 0, result.stderr
