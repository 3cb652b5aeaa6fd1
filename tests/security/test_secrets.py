"""Secrets come from the environment only: no secret setting has a built-in value in production, and the
database stores no secret (only hashes, and the names of the environment variables that hold secrets)."""

import json
import re

import pytest
from django.apps import apps
from django.db import models

from tests.core.test_settings import PRODUCTION
from tests.utils import child_env, run_python

SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|(^|_)KEY$|API_KEY", re.IGNORECASE)
URL_PASSWORD = re.compile(r"^[a-z0-9+.-]+://[^/@:]*:([^/@]+)@", re.IGNORECASE)
# Setting names that match the pattern but hold no secret.
NOT_SECRETS = {
    "PASSWORD_HASHERS",
    "PASSWORD_RESET_TIMEOUT",
    "AUTH_PASSWORD_VALIDATORS",
    "AXES_PASSWORD_FORM_FIELD",
    "SECRET_KEY_FALLBACKS",
    "AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT",
}

DUMP_SETTINGS = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({name: getattr(settings, name) for name in dir(settings) if name.isupper()}, default=str))
"""

# Environment variables that could carry a secret into the settings: removed for the first run.
SECRET_VARIABLES = dict.fromkeys(
    ("EMAIL_URL", "DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL")
)


def _production_settings(tmp_path, **env) -> dict:
    result = run_python(DUMP_SETTINGS, env=child_env(**{**PRODUCTION, "OPSPORTAL_VAR_DIR": str(tmp_path), **env}))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _secret_values(value, path: str, named_secret: bool = False):
    """Every (path, value) that is a secret: a value under a secret-looking name, or a URL's password."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _secret_values(item, f"{path}.{key}", named_secret or bool(SECRET_NAME.search(str(key))))
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            yield from _secret_values(item, f"{path}[{n}]", named_secret)
    elif isinstance(value, str):
        if named_secret and value:
            yield path, value
        match = URL_PASSWORD.match(value)
        if match:
            yield f"{path} (password in URL)", match.group(1)


def _all_secrets(values: dict) -> dict[str, str]:
    found = {}
    for name, value in values.items():
        if name in NOT_SECRETS:
            continue
        found.update(_secret_values(value, name, bool(SECRET_NAME.search(name))))
    return found


def test_the_finder_finds_secrets():
    sample = {
        "SECRET_KEY": "s3",
        "EMAIL_HOST_PASSWORD": "",
        "DATABASES": {"default": {"PASSWORD": "pw", "NAME": "x"}},
        "BROKER": "redis://:hunter2@redis:6379/0",
        "PASSWORD_HASHERS": ["x"],
    }
    assert _all_secrets(sample) == {
        "SECRET_KEY": "s3",
        "DATABASES.default.PASSWORD": "pw",
        "BROKER (password in URL)": "hunter2",
    }


def test_production_has_no_built_in_secret(tmp_path):
    values = _production_settings(tmp_path, **SECRET_VARIABLES)
    secrets = _all_secrets(values)
    # The only secret is the key the environment gave; nothing else has a default value.
    assert secrets == {"SECRET_KEY": PRODUCTION["DJANGO_SECRET_KEY"]}


def test_every_secret_setting_follows_its_environment_variable(tmp_path):
    env = {
        "DJANGO_SECRET_KEY": "from-env-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG",
        "EMAIL_URL": "smtp+tls://mailer:from-env-mail@smtp.example.com:587",
        "DATABASE_URL": "postgres://opsportal:from-env-db@db.example.com:5432/opsportal",
        "CELERY_BROKER_URL": "redis://:from-env-broker@redis.example.com:6379/0",
        "CACHE_URL": "redis://:from-env-cache@redis.example.com:6379/1",
    }
    secrets = _all_secrets(_production_settings(tmp_path, **{**SECRET_VARIABLES, **env}))
    assert set(secrets.values()) == {
        env["DJANGO_SECRET_KEY"],
        "from-env-mail",
        "from-env-db",
        "from-env-broker",
        "from-env-cache",
    }
    assert secrets["SECRET_KEY"] == env["DJANGO_SECRET_KEY"]
    assert secrets["EMAIL_HOST_PASSWORD"] == "from-env-mail"
    assert secrets["DATABASES.default.PASSWORD"] == "from-env-db"


def test_the_development_key_is_never_used_in_production(tmp_path):
    result = run_python(DUMP_SETTINGS, env=child_env(**{**PRODUCTION, "DJANGO_SECRET_KEY": None}))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


# --- The database stores no secret -----------------------------------------------------------------

SECRET_FIELD = re.compile(r"secret|password|passwd|token|credential|api_key|auth|private", re.IGNORECASE)
ENV_VAR_NAME = re.compile(r"_env_var$")
LABEL = re.compile(r"_(name|header)$")  # the name of a token or header, not its value
# Fields whose names look secret but hold a one-way hash or a non-secret.
HASHED_OR_HARMLESS = {
    ("accounts", "user", "password"),  # Django's salted password hash
    ("accounts", "apitoken", "key_hash"),  # SHA-256 of the key; the key is shown once
    ("adoption", "rollupmark", "token"),  # a change marker for rollup rebuilds, not a credential
}


def _secret_looking_fields():
    for model in apps.get_models():
        if not model.__module__.startswith("apps."):
            continue
        for field in model._meta.get_fields():
            if isinstance(field, models.Field) and not field.is_relation and SECRET_FIELD.search(field.name):
                yield model, field


def test_secret_looking_fields_hold_hashes_or_environment_variable_names_only():
    fields = list(_secret_looking_fields())
    assert fields, "the scan found no field at all"
    for model, field in fields:
        key = (model._meta.app_label, model._meta.model_name, field.name)
        if key in HASHED_OR_HARMLESS or LABEL.search(field.name):
            continue
        if isinstance(field, models.BooleanField | models.DateTimeField):
            continue
        assert ENV_VAR_NAME.search(field.name), (
            f"{model.__name__}.{field.name} looks like it stores a secret: store the name of an environment "
            "variable (a field ending in _env_var) instead"
        )


@pytest.mark.parametrize(
    ("app_label", "model_name"),
    [
        ("alerts", "notificationchannel"),
        ("delivery", "deliverysource"),
        ("billing", "billingsource"),
        ("telemetry", "telemetrysource"),
    ],
)
def test_sources_and_channels_name_the_environment_variable_of_their_secret(app_label, model_name):
    model = apps.get_model(app_label, model_name)
    names = [f.name for f in model._meta.get_fields() if isinstance(f, models.Field)]
    assert any(ENV_VAR_NAME.search(n) for n in names), f"{model.__name__}: {names}"
