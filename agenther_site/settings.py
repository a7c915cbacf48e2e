"""One settings module, configured from the environment (see README, "Configuration")."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from agenther_site.env import env_bool, env_endpoints, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("AGENTHER_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False) or env_bool("DJANGO_DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required unless DEBUG=1 (set SECRET_KEY to a long random string)"
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS ------------------------------------------------------------------------------------
# Production sits behind a TLS proxy: HTTPS only, unless the operator says the server is on a
# plain-HTTP intranet (the server says so at start, see agenther_site.startup). The development
# server (DEBUG) is plain HTTP.
PLAIN_HTTP = env_bool("AGENTHER_PLAIN_HTTP", False)
HTTPS_ONLY = not (DEBUG or PLAIN_HTTP)
# The proxy in front terminates TLS and must set (not pass on) X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = HTTPS_ONLY
# Load balancers probe the server itself over plain HTTP; a redirect would read as a failure.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000) if HTTPS_ONLY else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS_ONLY
SESSION_COOKIE_SECURE = HTTPS_ONLY
CSRF_COOKIE_SECURE = HTTPS_ONLY
SILENCED_SYSTEM_CHECKS = [
    # HSTS preloading commits a whole registered domain, for years, to HTTPS: a decision for
    # the domain's owner, not for one application usually served from a subdomain of it.
    "security.W021",
]
if PLAIN_HTTP:
    # Asked for by the operator (AGENTHER_PLAIN_HTTP=1), and said at start: no HTTPS redirect,
    # HSTS or secure cookies, so `check --deploy` need not warn about each.
    SILENCED_SYSTEM_CHECKS += ["security.W004", "security.W008", "security.W012", "security.W016"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "relabel",
    "review",
]

MIDDLEWARE = [
    "agenther_site.requestlog.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a lockout into its page
]

# Trajectory content is untrusted (web pages, tool output): no inline script may ever run.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

ROOT_URLCONF = "agenther_site.urls"
WSGI_APPLICATION = "agenther_site.wsgi.application"

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
                "relabel.roles.role_context",
            ],
        },
    },
]


def _database() -> dict:
    url = env_str("DATABASE_URL")
    if not url:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{VAR_DIR / 'agenther.sqlite3'}"
    try:
        config = dj_database_url.parse(url, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))
    except Exception as exc:
        raise ImproperlyConfigured(f"DATABASE_URL={url!r} is not a database URL: {exc}") from None
    if config["ENGINE"] == "django.db.backends.postgresql":
        # A database that does not answer fails a request (and /healthz) in seconds, not never.
        config.setdefault("OPTIONS", {}).setdefault("connect_timeout", 10)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Concurrent readers while the in-process pipeline writes.
        config.setdefault("OPTIONS", {}).update({"timeout": 30, "transaction_mode": "IMMEDIATE"})
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# --- Login throttle (django-axes) ---------------------------------------------------------
# A username that fails AGENTHER_LOGIN_FAILURE_LIMIT times in a row from one address is locked
# out there for AGENTHER_LOGIN_COOLOFF_MINUTES, right password or not; a success resets the count.
AUTHENTICATION_BACKENDS = [
    "agenther_site.auth.LoginThrottle",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AGENTHER_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AGENTHER_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "agenther_site.auth.lockout_response"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # `collectstatic` writes every file under a content-hashed name, gzipped beside it; WhiteNoise
    # serves those with far-future cache headers. With DEBUG the plain names are used.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "media"
EXPORT_ROOT = Path(env_str("AGENTHER_EXPORT_DIR", str(VAR_DIR / "exports")))
UPLOAD_ROOT = Path(env_str("AGENTHER_UPLOAD_DIR", str(VAR_DIR / "uploads")))
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 50 * 1024 * 1024
# Uploads and archives are bounded (README, "Security"); archives are checked while unpacking.
AGENTHER_UPLOAD_MAX_BYTES = env_int("AGENTHER_UPLOAD_MAX_MB", 512) * 2**20
AGENTHER_ARCHIVE_MAX_MEMBERS = env_int("AGENTHER_ARCHIVE_MAX_MEMBERS", 20_000)
AGENTHER_ARCHIVE_MAX_BYTES = env_int("AGENTHER_ARCHIVE_MAX_MB", 4096) * 2**20
AGENTHER_ARCHIVE_MAX_RATIO = env_int("AGENTHER_ARCHIVE_MAX_RATIO", 100)
FILE_UPLOAD_HANDLERS = [
    "relabel.upload_handlers.UploadLimitHandler",  # first: stops storing an upload over the limit
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads it through the hx-headers attribute, not JavaScript.
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Celery -------------------------------------------------------------------------------
# Without a broker, tasks run in-process (the `make demo` default); with one, on workers.
BROKER_CONFIGURED = bool(env_str("CELERY_BROKER_URL"))
CELERY_TASK_ALWAYS_EAGER = not BROKER_CONFIGURED
# An in-memory transport when there is no broker, so that eager `delay()` never tries to
# reach a default AMQP host (and never logs about it on stderr of --json commands).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Processes per worker: each takes one task (chunk_size items) at a time; README, "At scale".
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 2)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 600)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 660)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "agenther")
# An export may run this long (seconds) before its worker kills it.
AGENTHER_EXPORT_TIME_LIMIT = env_int("AGENTHER_EXPORT_TIME_LIMIT", 3660)
# Redis hands an unacknowledged task to another worker after the visibility timeout, even while
# the first still runs it: it must exceed the longest task, or a long export would run twice.
_LONGEST_TASK = max(CELERY_TASK_TIME_LIMIT, AGENTHER_EXPORT_TIME_LIMIT)
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", _LONGEST_TASK + 600)
if CELERY_VISIBILITY_TIMEOUT <= _LONGEST_TASK:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT={CELERY_VISIBILITY_TIMEOUT} must exceed the longest task time "
        f"limit ({_LONGEST_TASK} s), or a task still running would be handed to a second worker"
    )
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}

# --- LLM endpoint ---------------------------------------------------------------------------
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL")
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
AGENTHER_DEFAULT_MODEL = env_str("AGENTHER_DEFAULT_MODEL", "gpt-4o-mini")
# Further endpoints the operator declares (name, base URL, the variable holding its key); runs
# name endpoints, never key variables. A URL nobody declared is refused, or with this on, used
# without any key.
AGENTHER_ENDPOINTS = env_endpoints("AGENTHER_ENDPOINTS", "AGENTHER_ENDPOINTS_FILE")
AGENTHER_ALLOW_UNDECLARED_URLS = env_bool("AGENTHER_ALLOW_UNDECLARED_URLS", False)

# One JSON object a line on stderr. agenther.requests and agenther.tasks write one line a request
# and one a Celery task (agenther_site.requestlog, agenther_site.celery) whatever LOG_LEVEL is;
# they have their own handler because the Celery worker replaces the root logger's.
LOG_LEVEL = env_str("LOG_LEVEL", "WARNING")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": ["levelname", "name", "message"],
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json"},
        "events": {"class": "logging.StreamHandler", "formatter": "json"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "agenther": {"level": LOG_LEVEL, "propagate": True},
        "agenther.requests": {"handlers": ["events"], "level": "INFO", "propagate": False},
        "agenther.tasks": {"handlers": ["events"], "level": "INFO", "propagate": False},
    },
}
