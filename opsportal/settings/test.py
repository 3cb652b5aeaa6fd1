"""Test settings: the same configuration as production code paths, with fast hashing.

The database and broker still come from DATABASE_URL / CELERY_BROKER_URL, so the same suite runs on
SQLite + the filesystem broker or on PostgreSQL + Redis.
"""

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789abcdef")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("DJANGO_SESSION_COOKIE_SECURE", "0")
os.environ.setdefault("DJANGO_CSRF_COOKIE_SECURE", "0")
os.environ.setdefault("EMAIL_URL", "memorymail://")
# Tests run their servers on the local machine; tests/security narrow this to prove the refusals.
os.environ.setdefault("OPSPORTAL_OUTBOUND_ALLOW", "127.0.0.1,localhost")

from .base import *  # noqa: F403

# Tests write billing exports under the temporary folder; some sources name folders under /data.
BILLING_LOCAL_ROOTS = [*BILLING_LOCAL_ROOTS, tempfile.gettempdir(), "/data"]  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
LOGGING["root"]["level"] = env("OPSPORTAL_TEST_LOG_LEVEL", default="WARNING")  # noqa: F405
