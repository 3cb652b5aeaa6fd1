"""opsportal settings: every value comes from the environment (see README "Configuration").

With nothing set the portal runs on an embedded default: SQLite under ``var/`` and Celery's
filesystem broker, so a machine with only Python can run it. ``DATABASE_URL`` and
``CELERY_BROKER_URL`` switch to PostgreSQL and Redis with no code change.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parents[2]

env = environ.Env()
# A local .env file is optional; real environment variables win over it.
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env("OPSPORTAL_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# --- Core -----------------------------------------------------------------------------------------
# Secure by default: development mode must be asked for (the Makefile does, for `make run`).
DEBUG = env.bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. In production (DJANGO_DEBUG=0) opsportal refuses to start without "
            "a secret key: set DJANGO_SECRET_KEY to a long random string (python -c 'import secrets; "
            "print(secrets.token_urlsafe(64))'), or set DJANGO_DEBUG=1 for local development."
        )
    SECRET_KEY = "insecure-development-key-used-only-with-DJANGO_DEBUG-1"

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS is not set. In production (DJANGO_DEBUG=0) list the host names the portal "
        "answers to, comma-separated, e.g. DJANGO_ALLOWED_HOSTS=opsportal.example.com"
    )
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "axes",
    "csp",
    "apps.core",
    "apps.accounts",
    "apps.catalog",
    "apps.billing",
    "apps.telemetry",
    "apps.capacity",
    "apps.delivery",
    "apps.adoption",
    "apps.alerts",
    "apps.kpis",
    "apps.audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything reads the body (CSRF, uploads): an oversized request is refused from its Content-Length.
    "apps.core.limits.RequestSizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.audit.middleware.AuditContextMiddleware",
    "apps.core.middleware.PortalLoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "apps.core.uploads.UploadStorageErrorMiddleware",
    "apps.core.middleware.QueueUnavailableMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "opsportal.urls"
WSGI_APPLICATION = "opsportal.wsgi.application"
ASGI_APPLICATION = "opsportal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.core.context_processors.portal",
            ],
        },
    }
]

# --- Database -------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'opsportal.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker writes; IMMEDIATE avoids "database is locked"
    # on lock upgrades when web, worker and beat share the file.
    _db["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file (not memory) test database, so a real worker process can share it with the tests.
    _db["TEST"] = {"NAME": str(Path(_db["NAME"]).with_name(f"test-{Path(_db['NAME']).stem}.sqlite3"))}
else:
    _db.setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    _db["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://opsportal")}

# --- Auth -----------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
# The lockout backend comes first: it refuses a locked-out username + address before any password check.
AUTHENTICATION_BACKENDS = ["apps.accounts.backends.LockoutBackend", "apps.accounts.backends.RoleBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "kpis:overview"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- I18N / time ----------------------------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns about a missing root before collectstatic has run
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # plotly.min.js straight from the installed plotly package: no CDN, no copy in the repo.
    "apps.core.staticfinders.PlotlyFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"
UPLOAD_DIR = Path(env("OPSPORTAL_UPLOAD_DIR", default=str(VAR_DIR / "uploads")))
# Uploads too large to keep in memory are spooled in the upload folder (not /tmp), by a handler that turns a
# failed write (disk full) into a clear error and leaves no partial file (apps.core.uploads).
FILE_UPLOAD_TEMP_DIR = str(UPLOAD_DIR / "tmp")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)  # the files.E001 system check wants it to exist
FILE_UPLOAD_HANDLERS = [
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "apps.core.uploads.SpoolingUploadHandler",
]
# Size limits (apps.core.limits), all in MB: an uploaded billing file; an adoption or delivery CSV; any other
# request body (JSON batches, forms). Larger requests get 413 before their body is read; larger files are
# refused with a message naming the limit before they are imported. Files above 5 MB spill to disk.
MAX_UPLOAD_BYTES = env.int("OPSPORTAL_MAX_UPLOAD_MB", default=2048) * 1024 * 1024
MAX_CSV_UPLOAD_BYTES = env.int("OPSPORTAL_MAX_CSV_UPLOAD_MB", default=20) * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("OPSPORTAL_MAX_REQUEST_BODY_MB", default=10) * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Security -------------------------------------------------------------------------------------
# Cookies: the session cookie is never readable from JavaScript; both cookies stay on same-site
# navigations (Lax), and travel only over HTTPS in production.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# The CSRF cookie stays readable: the API docs page sends it back as a header when trying a request.
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_COOKIE_AGE", default=12 * 3600)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = env("DJANGO_SECURE_REFERRER_POLICY", default="same-origin")
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=True)
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
    # /healthz is polled over plain HTTP by load balancers and orchestrators.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Behind a TLS-terminating proxy (see docker/), trust its X-Forwarded-Proto header.
BEHIND_PROXY = env.bool("DJANGO_BEHIND_PROXY", default=False)
if BEHIND_PROXY and not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy (django-csp). Every script is a file under /static/: no inline <script>, no
# on* attribute, no javascript: URL, no eval. Chart data travels as <script type="application/json">
# (json_script), which is data and is never executed. Styles allow 'unsafe-inline' because Plotly
# creates a <style> element for its chart rules and sets style attributes on the SVG it draws (the
# Swagger UI does the same); inline styles cannot run code, so scripts keep the strict policy. Images
# allow data: URLs because Plotly draws heatmaps as data-URL images.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
_csp_report_uri = env("OPSPORTAL_CSP_REPORT_URI", default="")
if _csp_report_uri:
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["report-uri"] = [_csp_report_uri]

# Login rate limiting (django-axes): after OPSPORTAL_LOGIN_FAILURE_LIMIT failed sign-ins for one
# username from one address, that pair is locked out for OPSPORTAL_LOGIN_COOLOFF_MINUTES; a further
# failure during the lockout restarts the cool-off. Admins see and clear lockouts in the admin site
# (Axes > Access attempts). A successful sign-in clears the count.
AXES_ENABLED = env.bool("OPSPORTAL_LOGIN_LOCKOUT", default=True)
AXES_FAILURE_LIMIT = env.int("OPSPORTAL_LOGIN_FAILURE_LIMIT", default=5)
LOGIN_COOLOFF_MINUTES = env.int("OPSPORTAL_LOGIN_COOLOFF_MINUTES", default=15)
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "apps.accounts.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
# The address failures are counted against: REMOTE_ADDR, or behind the proxy the address the proxies
# recorded in X-Forwarded-For (anything further left came from the client and could be forged).
AXES_CLIENT_IP_CALLABLE = "apps.accounts.lockout.client_address"
PROXY_COUNT = env.int("DJANGO_PROXY_COUNT", default=1)

# --- Outbound connections (apps.core.netguard) -----------------------------------------------------
# URLs admins configure (billing sources, Prometheus, webhooks, Alertmanager) may not reach loopback, private,
# link-local (cloud metadata) or other non-public addresses unless listed here: host names and CIDRs,
# comma-separated. Development allows the local machine, for the demo.
OUTBOUND_ALLOW = env.list("OPSPORTAL_OUTBOUND_ALLOW", default=["127.0.0.1", "localhost"] if DEBUG else [])
OUTBOUND_CONNECT_TIMEOUT = env.float("OPSPORTAL_OUTBOUND_CONNECT_TIMEOUT", default=10)
# Seconds a billing download may wait for the server's next bytes.
BILLING_DOWNLOAD_TIMEOUT = env.float("OPSPORTAL_BILLING_DOWNLOAD_TIMEOUT", default=120)
# Folders billing sources may read local exports from (absolute paths, comma-separated): a source's folder or
# glob must lie inside one, and so must every file it matches, symbolic links resolved.
BILLING_LOCAL_ROOTS = env.list(
    "OPSPORTAL_BILLING_LOCAL_ROOTS", default=[str(VAR_DIR / "exports"), str(VAR_DIR / "demo" / "billing")]
)
# On PostgreSQL a FOCUS CSV file is checked in this many parts at once, one database process (and connection)
# each: up to the database server's cores.
BILLING_IMPORT_PARTS = env.int("OPSPORTAL_BILLING_IMPORT_PARTS", default=2)
# Prometheus is asked to stop a query after the source's timeout; the client waits this much longer for it.
PROMETHEUS_TIMEOUT_GRACE = env.float("OPSPORTAL_PROMETHEUS_TIMEOUT_GRACE", default=5)

# --- Telemetry ------------------------------------------------------------------------------------
TELEMETRY_RAW_RETENTION_DAYS = env.int("OPSPORTAL_TELEMETRY_RAW_RETENTION_DAYS", default=35)
TELEMETRY_HOURLY_RETENTION_DAYS = env.int("OPSPORTAL_TELEMETRY_HOURLY_RETENTION_DAYS", default=400)

# --- Email ----------------------------------------------------------------------------------------
EMAIL_CONFIG = env.email("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="opsportal <opsportal@localhost>")
PORTAL_BASE_URL = env("OPSPORTAL_BASE_URL", default="http://127.0.0.1:8000")

# --- REST API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.accounts.permissions.RolePermission"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "apps.core.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "opsportal API",
    "DESCRIPTION": "Operational-efficiency KPIs, their data sources and their configuration. "
    "Authenticate with `Authorization: Token <key>` (create a token under Account) or a session.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["apps.accounts.permissions.RolePermission"],  # not for events:ingest tokens
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Every operation also documents the standard error answers (400/401/403/404/409/413).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.schema.add_error_responses",
    ],
    # Several models have a "kind" or "status" field with different choices: name their enums explicitly.
    "ENUM_NAME_OVERRIDES": {
        "EnvironmentKindEnum": "apps.catalog.models.Environment.Kind",
        "LocationKindEnum": "apps.catalog.models.Location.Kind",
        "RunStatusEnum": "apps.billing.models.Reallocation.Status",
    },
}

# --- Celery ---------------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = Path(env("OPSPORTAL_BROKER_DIR", default=str(VAR_DIR / "broker")))
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # Redis re-delivers an unacknowledged task after the visibility timeout: it must exceed the
    # longest task (hard time limit) so a slow import is not run twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker that loses the broker reconnects by itself, for ever (a Redis restart is not fatal); a task running
# at that moment finishes, and its effect is idempotent should the broker deliver it again.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Queuing a task (the web side) retries for about three seconds while the broker is unreachable, then raises
# kombu's OperationalError naming the broker, so a request fails visibly instead of losing the task.
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 4, "interval_start": 0.25, "interval_step": 0.5, "interval_max": 1}
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_IGNORE_RESULT = True  # progress and outcomes live in the portal's own tables
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=1800)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=1740)
# Acknowledge after the task ran, and re-queue a task whose worker died: imports and evaluations are
# idempotent, so running one twice is safe while losing one is not.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = tuple(
    Queue(name) for name in ("default", "billing", "telemetry", "forecasts", "alerts", "notifications")
)
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Logging --------------------------------------------------------------------------------------
LOG_LEVEL = env("DJANGO_LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"refusals": {"()": "apps.core.logfilters.RefusalWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["refusals"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
