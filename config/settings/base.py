"""Settings shared by every environment.

Every value a deployment may change is read from the environment (see ``.env.example``);
the defaults here are for local development against services on 127.0.0.1.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.weak_settings import DEVELOPMENT_PAYMENT_WEBHOOK_SECRET, webhook_secret_bytes

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A .env file may supply variables in development; real environment variables win.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
# Previous keys, still accepted for signatures (sessions, API tokens) while a new key rolls out.
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "drf_standardized_errors",
    "django_guid",
    "django_prometheus",
    "core",
    "inventory",
    "orders",
    "notifications",
]

MIDDLEWARE = [
    # A customer's read of their own order, answered from Redis, and their one-line order, placed
    # (or refused from the stock mark), when Redis holds the token's copy, with what the
    # middleware below would add (orders/middleware.py); everything else goes on.
    "orders.middleware.OrderHotPathMiddleware",
    # First and last: request counts and latencies (core/metrics.py, /metrics).
    "core.metrics.RequestLatencyMiddleware",
    "django_guid.middleware.guid_middleware",
    # Bodies over the API's limit (413) and NUL characters in URLs (400), refused unread.
    "core.middleware.HostileInputMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Sessions, authentication from the session and messages, for browsers (the admin, the
    # browsable API); skipped by requests that send an API token (core/middleware.py).
    "core.middleware.BrowserSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Answers a login refused by the lockout (core/lockout.py) with 429; last before the metrics.
    "axes.middleware.AxesMiddleware",
    # django-prometheus's PrometheusAfterMiddleware, recording the metrics read, each series looked up once.
    "core.metrics.RequestMetricsMiddleware",
]

# The admin's checks look for the session, authentication and messages middleware by class in
# MIDDLEWARE; core.middleware.BrowserSessionMiddleware runs all three (tests/core/test_middleware.py).
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    # django-prometheus's wrapper of Django's PostgreSQL backend (psycopg 3): counts connections,
    # queries and errors for /metrics (django_db_*); otherwise it is Django's own backend, but
    # for a health check that needs no query (config/database/base.py).
    "default": env.db_url(
        "DATABASE_URL",
        default="postgres://postgres@127.0.0.1:5432/orders",
        engine="config.database",
    ),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})
# Fail fast when PostgreSQL is unreachable: the API answers 503 instead of hanging.
DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 3)
# Nothing may depend on a database session, so that PgBouncer in transaction pooling mode can
# sit in front of PostgreSQL: a server-side cursor of .iterator() outside a transaction would be
# declared on one server connection and fetched from another. (Django already keeps psycopg from
# preparing statements, and binds parameters on the client; "pool", "server_side_binding",
# "prepare_threshold" and "assume_role" in OPTIONS would each tie state to a session.)
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# redis://, or rediss:// for TLS; a password as redis://:PASSWORD@host:6379/0 (or
# redis://USER:PASSWORD@... with Redis ACLs). See docs/operations.md.
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        # django-redis (its client and connection pool), through django-prometheus's subclass
        # that counts gets, hits, misses and failures for /metrics (django_cache_*).
        "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "orders",
        "OPTIONS": {
            # JSON, never pickle: a value read back from Redis is data, not code to run, whoever
            # managed to write it. Only JSON types can be cached (see core/readings.py).
            "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
            # Redis is only an accelerator: never let a dead Redis hold a request for long. Its
            # errors still reach the caller, which carries on without the cache (never silenced
            # here: a throttle or a reading must know it got nothing).
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "SOCKET_TIMEOUT": 0.5,
        },
    }
}

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username or address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where collectstatic puts the files whitenoise serves: a path relative to the repository root,
# or an absolute one for a deployment that keeps them elsewhere.
STATIC_ROOT = BASE_DIR / env("DJANGO_STATIC_ROOT", default="staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Security (README, Security; docs/security.md) ------------------------------------------
# Admin messages (a new endpoint's secret among them) live in the session, on the server; the
# default cookie storage would send them to the browser in a readable Set-Cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
CSRF_FAILURE_VIEW = "core.error_views.csrf_failure"
# seed_demo resets users to passwords printed in the README: development and test settings only.
DEMO_DATA_ALLOWED = False
# Request bodies: the API refuses more than this with 413 before reading the body
# (core/middleware.py); Django refuses the same size for the admin's forms.
API_MAX_BODY_BYTES = 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
# API tokens (django-rest-knox, core/tokens.py): only their SHA-512 digests are stored, in
# core.ApiToken, which also remembers the password they were issued under.
API_TOKEN_TTL_HOURS = env.float("API_TOKEN_TTL_HOURS", default=720)
if API_TOKEN_TTL_HOURS <= 0:
    raise ImproperlyConfigured(f"API_TOKEN_TTL_HOURS must be positive, not {API_TOKEN_TTL_HOURS:g}")
KNOX_TOKEN_MODEL = "core.ApiToken"  # noqa: S105 (a model name)
# knox's own token model is swapped out for core.ApiToken: none of its migrations, which would
# create an unused table whose foreign key to the users would only get in the way.
MIGRATION_MODULES = {"knox": None}
REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Token",
    "TOKEN_TTL": timedelta(hours=API_TOKEN_TTL_HOURS),
    "TOKEN_MODEL": KNOX_TOKEN_MODEL,
}
# Login lockout (django-axes; core/lockout.py): failed logins of the API and the admin are counted
# per username and per client address, in PostgreSQL; past the limit within the window, that
# username or address is refused (429, Retry-After) until the window has passed since its last
# failure.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
LOGIN_LOCKOUT_MINUTES = env.float("LOGIN_LOCKOUT_MINUTES", default=15)
# Proxies (load balancers) in front of gunicorn that append the client's address to
# X-Forwarded-For; 0: the client is REMOTE_ADDR.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_ENABLED = env.bool("LOGIN_LOCKOUT_ENABLED", default=True)
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "core.lockout.client_ip_address"
AXES_LOCKOUT_CALLABLE = "core.lockout.lockout_response"
# Failures are counted and logged; successful logins are not recorded (a table that would grow
# with every login).
AXES_DISABLE_ACCESS_LOG = True
AXES_SENSITIVE_PARAMETERS = ["password"]
# When set, /metrics and the workers' metrics endpoints want "Authorization: Bearer <token>".
METRICS_TOKEN = env("METRICS_TOKEN", default="")

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # django-rest-knox's tokens (hashed, expiring): core/tokens.py
        "core.tokens.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies only (forms and multipart are refused with 415), parsed with a depth limit.
    "DEFAULT_PARSER_CLASSES": ["core.parsers.BoundedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # drf-standardized-errors' AutoSchema, plus the domain errors each view declares (core.openapi)
    "DEFAULT_SCHEMA_CLASS": "core.openapi.AutoSchema",
    # drf-standardized-errors' own handler (its handler class is core.errors.ApiExceptionHandler,
    # set below): its schema generator documents the error responses only for views using it.
    "EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "order_create": env("ORDER_CREATE_RATE", default="60/min") or None,
    },
}

DRF_STANDARDIZED_ERRORS: dict[str, object] = {
    "ENABLE_IN_DEBUG_FOR_UNHANDLED_EXCEPTIONS": False,
    # DRF's own answers, plus 503: any operation can meet a dependency outage (core.errors).
    # 409 and 422 are documented where a view declares the domain errors behind them.
    "ALLOWED_ERROR_STATUS_CODES": ["400", "401", "403", "404", "405", "406", "415", "429", "500", "503"],
    "ERROR_SCHEMAS": {"503": "core.openapi.ErrorResponse503Serializer"},
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Order service API",
    "DESCRIPTION": (
        "Orders, stock reservation, payments and merchant webhooks. "
        "Authenticate with `Authorization: Token <token>` from `POST /api/v1/auth/token/`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.OrderStatus",
        "ValidationErrorEnum": "drf_standardized_errors.openapi_serializers.ValidationErrorEnum.choices",
        "ClientErrorEnum": "drf_standardized_errors.openapi_serializers.ClientErrorEnum.choices",
        "ServerErrorEnum": "drf_standardized_errors.openapi_serializers.ServerErrorEnum.choices",
        "ErrorCode401Enum": "drf_standardized_errors.openapi_serializers.ErrorCode401Enum.choices",
        "ErrorCode403Enum": "drf_standardized_errors.openapi_serializers.ErrorCode403Enum.choices",
        "ErrorCode404Enum": "drf_standardized_errors.openapi_serializers.ErrorCode404Enum.choices",
        "ErrorCode405Enum": "drf_standardized_errors.openapi_serializers.ErrorCode405Enum.choices",
        "ErrorCode406Enum": "drf_standardized_errors.openapi_serializers.ErrorCode406Enum.choices",
        "ErrorCode415Enum": "drf_standardized_errors.openapi_serializers.ErrorCode415Enum.choices",
        "ErrorCode429Enum": "drf_standardized_errors.openapi_serializers.ErrorCode429Enum.choices",
        "ErrorCode500Enum": "drf_standardized_errors.openapi_serializers.ErrorCode500Enum.choices",
        "ErrorCode503Enum": "core.openapi.SERVICE_UNAVAILABLE_CODES",
    },
    # Paths served by one view per method (core/routing.py) are documented view by view.
    "PREPROCESSING_HOOKS": ["core.routing.endpoints_by_method"],
    "POSTPROCESSING_HOOKS": [
        "drf_standardized_errors.openapi_hooks.postprocess_schema_enums",
    ],
}

# --- Celery (see config/celery_app.py and config/queues.py) -------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="amqp://guest:guest@127.0.0.1:5672//")
# Celery's Django fix-up closes the database connection after every task unless told to reuse
# it; config/celery_app.py closes it as Django does after a request instead.
CELERY_DB_REUSE_MAX = 1000
# Every task has a time limit (ARCHITECTURE.md, invariant 9). At the soft limit the task gets
# SoftTimeLimitExceeded and can clean up; at the hard limit its process is killed and replaced,
# and its message is returned to the queue (the quorum queue's delivery limit bounds how often).
# Tasks that need other limits set them on their decorator (the send tasks, below).
CELERY_TASK_SOFT_TIME_LIMIT = env.int("TASK_SOFT_TIME_LIMIT_SECONDS", default=120)
CELERY_TASK_TIME_LIMIT = env.int("TASK_TIME_LIMIT_SECONDS", default=150)
if not 0 < CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("TASK_SOFT_TIME_LIMIT_SECONDS must be positive and below TASK_TIME_LIMIT_SECONDS")

# A dead letter of these tasks is replayed by their app's service, not published again as it is
# (core/dead_letters.py): a notification is recovered as the admin's Resend recovers it.
_NOTIFICATION_RECOVERY = "notifications.services.recovery.notification_dead_letter_replay"
DEAD_LETTER_REPLAY_HANDLERS = {
    "notifications.tasks.webhook_delivery_send_task": _NOTIFICATION_RECOVERY,
    "notifications.tasks.email_notification_send_task": _NOTIFICATION_RECOVERY,
    "notifications.tasks.email_notifications_send_task": _NOTIFICATION_RECOVERY,
}


# --- Business settings --------------------------------------------------------------------
# Most orders one customer may have pending or reserved at once (409 too_many_open_orders beyond):
# unpaid orders hold stock, and one customer must not hold a SKU's whole stock. Empty: no cap.
def open_orders_cap(value: str) -> int | None:
    if not value.strip():
        return None
    if not value.strip().isdecimal() or int(value) < 1:
        raise ImproperlyConfigured(f"ORDER_MAX_OPEN_PER_CUSTOMER must be a positive integer or empty, not {value!r}")
    return int(value)


ORDER_MAX_OPEN_PER_CUSTOMER = open_orders_cap(env("ORDER_MAX_OPEN_PER_CUSTOMER", default="20"))
ORDER_PAYMENT_TIMEOUT_SECONDS = env.int("ORDER_PAYMENT_TIMEOUT_SECONDS", default=1800)
ORDER_EXPIRY_SWEEP_SECONDS = env.float("ORDER_EXPIRY_SWEEP_SECONDS", default=5)
PAYMENT_WEBHOOK_SECRET = env(
    "PAYMENT_WEBHOOK_SECRET",
    # Development-only secret ("dev-payment-secret-change-me" in base64); production refuses it.
    default=DEVELOPMENT_PAYMENT_WEBHOOK_SECRET,
)
# A secret that is not whsec_ + base64 (an empty one too) would fail every callback: refused at
# start under any settings; production also refuses a short one (config/weak_settings.py).
if not PAYMENT_WEBHOOK_SECRET:
    raise ImproperlyConfigured("PAYMENT_WEBHOOK_SECRET must be set: the payment provider's signing secret (whsec_...).")
try:
    webhook_secret_bytes(PAYMENT_WEBHOOK_SECRET)
except ValueError as _exc:
    raise ImproperlyConfigured(f"PAYMENT_WEBHOOK_SECRET is not a Standard Webhooks secret: {_exc}.") from None
NOTIFY_MAX_RETRIES = env.int("NOTIFY_MAX_RETRIES", default=8)
NOTIFY_BACKOFF_BASE_SECONDS = env.float("NOTIFY_BACKOFF_BASE_SECONDS", default=2)
NOTIFY_BACKOFF_MAX_SECONDS = env.float("NOTIFY_BACKOFF_MAX_SECONDS", default=600)
# How long one attempt may hold a notification's send lease (notifications/lock_objects.py): longer
# than any attempt can take, as a second copy may send once it has expired. Also how long a
# notification whose worker was killed mid-send waits before it is sent again.
NOTIFY_SEND_LEASE_SECONDS = env.int("NOTIFY_SEND_LEASE_SECONDS", default=120)
# One webhook attempt, in total: connect, TLS, sending, the answer's headers and body
# (notifications/webhook_client.py). A receiver that trickles bytes costs at most this.
WEBHOOK_DEADLINE_SECONDS = env.float("WEBHOOK_DEADLINE_SECONDS", default=15)
# The circuit of each merchant endpoint (notifications/services/circuit.py): failed attempts in a
# row that open it, its first cool-down (doubling at each opening in a row, up to the maximum),
# and how long an endpoint may fail before it is deactivated and staff are e-mailed.
WEBHOOK_CIRCUIT_FAILURES = env.int("WEBHOOK_CIRCUIT_FAILURES", default=5)
# ...or fewer, once the failures in a row held senders this long in all (two deadlines).
WEBHOOK_CIRCUIT_FAILURE_SECONDS = env.float("WEBHOOK_CIRCUIT_FAILURE_SECONDS", default=2 * WEBHOOK_DEADLINE_SECONDS)
WEBHOOK_CIRCUIT_COOLDOWN_SECONDS = env.int("WEBHOOK_CIRCUIT_COOLDOWN_SECONDS", default=30)
WEBHOOK_CIRCUIT_COOLDOWN_MAX_SECONDS = env.int("WEBHOOK_CIRCUIT_COOLDOWN_MAX_SECONDS", default=3600)
WEBHOOK_DISABLE_AFTER_HOURS = env.float("WEBHOOK_DISABLE_AFTER_HOURS", default=72)
# Attempts in flight to one endpoint at once, across all workers: a hanging endpoint holds at
# most this many worker processes (each for at most WEBHOOK_DEADLINE_SECONDS).
WEBHOOK_ENDPOINT_CONCURRENCY = env.int("WEBHOOK_ENDPOINT_CONCURRENCY", default=2)
if WEBHOOK_ENDPOINT_CONCURRENCY < 1:
    raise ImproperlyConfigured("WEBHOOK_ENDPOINT_CONCURRENCY must be at least 1")
if not (WEBHOOK_CIRCUIT_FAILURES >= 1 and 0 < WEBHOOK_CIRCUIT_COOLDOWN_SECONDS <= WEBHOOK_CIRCUIT_COOLDOWN_MAX_SECONDS):
    raise ImproperlyConfigured(
        "WEBHOOK_CIRCUIT_FAILURES must be at least 1, and 0 < WEBHOOK_CIRCUIT_COOLDOWN_SECONDS"
        " <= WEBHOOK_CIRCUIT_COOLDOWN_MAX_SECONDS"
    )
# The send tasks' time limits: above one attempt (the webhook deadline, or the SMTP conversation
# under EMAIL_TIMEOUT) and the writes around it, below the send lease, so that a second copy
# of a message can never send while a first one, past its lease, still does.
NOTIFY_SEND_SOFT_TIME_LIMIT_SECONDS = env.int("NOTIFY_SEND_SOFT_TIME_LIMIT_SECONDS", default=45)
NOTIFY_SEND_TIME_LIMIT_SECONDS = env.int("NOTIFY_SEND_TIME_LIMIT_SECONDS", default=60)
if not (
    0 < WEBHOOK_DEADLINE_SECONDS < NOTIFY_SEND_SOFT_TIME_LIMIT_SECONDS
    and NOTIFY_SEND_SOFT_TIME_LIMIT_SECONDS < NOTIFY_SEND_TIME_LIMIT_SECONDS < NOTIFY_SEND_LEASE_SECONDS
):
    raise ImproperlyConfigured(
        "Send limits must grow in this order: 0 < WEBHOOK_DEADLINE_SECONDS < NOTIFY_SEND_SOFT_TIME_LIMIT_SECONDS"
        " < NOTIFY_SEND_TIME_LIMIT_SECONDS < NOTIFY_SEND_LEASE_SECONDS"
    )
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env.bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", default=False)

# --- Retention (core/retention.py): how long rows that only record the past are kept ---------
# Each table is pruned by its own periodic task every RETENTION_PRUNE_SECONDS, in batches.
# Orders, their lines and events, and the stock ledger are kept for good.
RETENTION_PRUNE_SECONDS = env.float("RETENTION_PRUNE_SECONDS", default=3600)
OUTBOX_RETENTION_HOURS = env.float("OUTBOX_RETENTION_HOURS", default=24)
# At least the contract's 24 hours, during which a repeated request must answer the first response.
IDEMPOTENCY_KEY_RETENTION_HOURS = env.float("IDEMPOTENCY_KEY_RETENTION_HOURS", default=24)
TASK_FAILURE_RETENTION_DAYS = env.float("TASK_FAILURE_RETENTION_DAYS", default=30)
# At least a week: a receipt is what makes a payment provider's retry of a callback (same
# webhook-id, fresh signature; providers retry for days) a harmless duplicate.
PAYMENT_RECEIPT_RETENTION_DAYS = env.float("PAYMENT_RECEIPT_RETENTION_DAYS", default=90)
WEBHOOK_ATTEMPT_RETENTION_DAYS = env.float("WEBHOOK_ATTEMPT_RETENTION_DAYS", default=30)
# The audit trail of staff actions: two years by default.
AUDIT_RETENTION_DAYS = env.float("AUDIT_RETENTION_DAYS", default=730)
RETENTION_MINIMUMS = {
    "RETENTION_PRUNE_SECONDS": (RETENTION_PRUNE_SECONDS, 60),
    "OUTBOX_RETENTION_HOURS": (OUTBOX_RETENTION_HOURS, 1),
    "IDEMPOTENCY_KEY_RETENTION_HOURS": (IDEMPOTENCY_KEY_RETENTION_HOURS, 24),
    "TASK_FAILURE_RETENTION_DAYS": (TASK_FAILURE_RETENTION_DAYS, 1),
    "PAYMENT_RECEIPT_RETENTION_DAYS": (PAYMENT_RECEIPT_RETENTION_DAYS, 7),
    "WEBHOOK_ATTEMPT_RETENTION_DAYS": (WEBHOOK_ATTEMPT_RETENTION_DAYS, 1),
    "AUDIT_RETENTION_DAYS": (AUDIT_RETENTION_DAYS, 30),
}
for _name, (_value, _minimum) in RETENTION_MINIMUMS.items():
    if _value < _minimum:
        raise ImproperlyConfigured(f"{_name} must be at least {_minimum}, not {_value:g}")

# --- E-mail -------------------------------------------------------------------------------
if "EMAIL_URL" in env:
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
    EMAIL_HOST = env("EMAIL_HOST", default="localhost")
    EMAIL_PORT = env.int("EMAIL_PORT", default=25)
    EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
    EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
    EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
    EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="orders@localhost")

# --- Logging ------------------------------------------------------------------------------
DJANGO_GUID = {
    "GUID_HEADER_NAME": "X-Request-ID",
    # A caller's X-Request-ID is kept only if it is a UUID (any common spelling); anything else
    # is replaced by a fresh id. Arbitrary text would reach every log line and the outbox's
    # 64-character request_id column, where an over-long id would fail the whole request.
    "VALIDATE_GUID": True,
    "RETURN_HEADER": True,
    "EXPOSE_HEADER": True,
    "INTEGRATIONS": [],
}
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOG_FORMAT = env("LOG_FORMAT", default="text")  # "text" or "json"

# --- Tracing (core/tracing.py): OpenTelemetry over OTLP/HTTP when an endpoint is set; off, it
# is not even imported. The exporter, the sampler and the batching read their own OTEL_* variables.
TRACING_ENABLED = bool(
    env("OTEL_EXPORTER_OTLP_ENDPOINT", default="") or env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default="")
) and not env.bool("OTEL_SDK_DISABLED", default=False)


def build_logging(log_format: str, level: str, *, trace_ids: bool = TRACING_ENABLED) -> dict[str, object]:
    """Logging config: one handler to stderr, every record carrying the request id, and the
    running task's id and order (core/log_context.py); with ``trace_ids`` (tracing on), the text
    lines also show the trace id (JSON lines always have ``trace_id`` and ``span_id``).

    The request id is django-guid's: the caller's ``X-Request-ID`` or one made up for the
    request, also returned in the response's ``X-Request-ID`` header; a task carries the id of
    the request that caused it.

    ``text`` is one readable line per record (development); ``json`` is one JSON object per line
    with ``time``, ``level``, ``name``, ``message``, ``request_id``, ``task_id``, ``order_id``,
    ``trace_id`` and ``span_id`` (production).
    """
    if log_format not in ("text", "json"):
        raise ValueError(f"LOG_FORMAT must be 'text' or 'json', not {log_format!r}")
    ids = "%(request_id)s trace=%(trace_id)s" if trace_ids else "%(request_id)s"
    formatters: dict[str, dict[str, object]] = {
        "text": {
            "format": f"%(asctime)s %(levelname)s [{ids}] %(name)s: %(message)s",
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": (
                "%(levelname)s %(name)s %(message)s %(request_id)s %(task_id)s %(order_id)s %(trace_id)s %(span_id)s"
            ),
            "rename_fields": {"levelname": "level"},
            "timestamp": "time",  # ISO 8601 in UTC, to the microsecond
        },
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {
                "()": "core.log_context.request_id_filter",
                "missing": "-" if log_format == "text" else None,
            },
        },
        "formatters": formatters,
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's default logging gives these loggers handlers of their own (unformatted
            # lines on the console when DEBUG is on, which then appear twice); naming them here
            # removes those handlers, so their records reach the console once, through root.
            "django": {"level": level},
            "django.server": {"level": level},
            "django.db.backends": {"level": "INFO"},
            "amqp": {"level": "WARNING"},
            "kombu": {"level": "WARNING"},
            "django_guid": {"level": "WARNING"},
            # The span exporter retries a collector that is down with a warning each time; its
            # error when it gives up on a batch (spans dropped) is what operators need.
            "opentelemetry": {"level": "ERROR"},
        },
    }


LOGGING = build_logging(LOG_FORMAT, LOG_LEVEL)

# --- Metrics (core/metrics.py) ----------------------------------------------------------------
# Collectors of the gauges /metrics reads at scrape time, each app's own.
METRICS_COLLECTORS = [
    "core.gauges.QueueDepthCollector",
    "core.gauges.OutboxCollector",
    "orders.metrics.OrderDeskCollector",
    "inventory.metrics.StockLedgerCollector",
    "notifications.metrics.WebhookCircuitCollector",
]
# The worker's own endpoint: a port, or a range of which each worker takes the first free port
# (several workers on one host); empty: no endpoint.
WORKER_METRICS_PORT = env("WORKER_METRICS_PORT", default="9808")
WORKER_METRICS_ADDRESS = env("WORKER_METRICS_ADDRESS", default="127.0.0.1")

# --- Beat: periodic work. Every task here is safe to run twice at once (two beats). --------
OUTBOX_RELAY_SECONDS = env.float("OUTBOX_RELAY_SECONDS", default=5)
STOCK_RECONCILE_SECONDS = env.int("STOCK_RECONCILE_SECONDS", default=600)
CELERY_BEAT_SCHEDULE = {
    "outbox-relay": {
        "task": "core.tasks.outbox_relay_task",
        "schedule": OUTBOX_RELAY_SECONDS,
    },
    # Orders left pending with no reservation task on its way (orders/reservation_requests.py).
    "order-reservation-sweep": {
        "task": "orders.tasks.order_reservation_sweep_task",
        "schedule": 15.0,
    },
    "order-expiry-sweep": {
        "task": "orders.tasks.order_expire_overdue_task",
        "schedule": ORDER_EXPIRY_SWEEP_SECONDS,
    },
    # Retention (above): one task per table, so a slow or failing one never holds up the others.
    "outbox-prune": {
        "task": "core.tasks.outbox_prune_task",
        "schedule": RETENTION_PRUNE_SECONDS,
    },
    "idempotency-key-prune": {
        "task": "core.tasks.idempotency_key_prune_task",
        "schedule": RETENTION_PRUNE_SECONDS,
    },
    "task-failure-prune": {
        "task": "core.tasks.task_failure_prune_task",
        "schedule": RETENTION_PRUNE_SECONDS,
    },
    "audit-entry-prune": {
        "task": "core.tasks.audit_entry_prune_task",
        "schedule": RETENTION_PRUNE_SECONDS,
    },
    "api-token-prune": {
        "task": "core.tasks.api_token_prune_task",
        "schedule": RETENTION_PRUNE_SECONDS,
    },
    "payment-receipt-prune": {
        "task": "orders.tasks.payment_receipt_prune_task",
        "schedule": RETENTION_PRUNE_SECONDS,
    },
    "delivery-attempt-prune": {
        "task": "notifications.tasks.delivery_attempt_prune_task",
        "schedule": RETENTION_PRUNE_SECONDS,
    },
    # The ledger check of `reconcile_stock`, exported as a metric (inventory/reconciliation.py).
    # To the orders queue, with the other periodic work: never in the way of a reservation.
    # The per-minute counts of the admin dashboard's charts (orders/activity.py).
    "activity-rollup": {
        "task": "orders.tasks.activity_rollup_task",
        "schedule": 60.0,
    },
    "stock-reconcile": {
        "task": "inventory.tasks.stock_reconcile_task",
        "schedule": STOCK_RECONCILE_SECONDS,
        "options": {"queue": "orders", "routing_key": "orders"},
    },
}
DRF_STANDARDIZED_ERRORS["EXCEPTION_HANDLER_CLASS"] = "core.errors.ApiExceptionHandler"

# --- Error reporting (config/sentry.py): Sentry when SENTRY_DSN is set, nothing otherwise -----
SENTRY_DSN = env("SENTRY_DSN", default="")
if SENTRY_DSN:
    from config.sentry import sentry_init

    sentry_init(
        dsn=SENTRY_DSN,
        # By default the settings' name: production, local, test.
        environment=env("SENTRY_ENVIRONMENT", default=env("DJANGO_SETTINGS_MODULE", default="").rpartition(".")[2]),
        release=env("SENTRY_RELEASE", default=None),
        send_default_pii=env.bool("SENTRY_SEND_DEFAULT_PII", default=False),
    )
