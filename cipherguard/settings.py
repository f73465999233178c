"""CipherGuard settings: one manifest, driven by the environment.

Every variable an operator can set is read here, once, through the typed helpers in
``cipherguard.env``. Defaults make a fresh clone run on SQLite with an in-process cache;
``ENVIRONMENT=production`` refuses to start without real secrets. See ``.env.example``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from cipherguard.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    parse_postgres_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CIPHERGUARD_VAR_DIR", str(BASE_DIR / "var")))

# --- Environment -------------------------------------------------------------------------------
ENVIRONMENT = env_str("ENVIRONMENT", "development")
if ENVIRONMENT not in {"development", "production", "test"}:
    raise ImproperlyConfigured(f"ENVIRONMENT must be development, production or test, got {ENVIRONMENT!r}")
IS_PRODUCTION = ENVIRONMENT == "production"
DEBUG = env_bool("DEBUG", not IS_PRODUCTION and ENVIRONMENT != "test")

# Development-only placeholders. Production refuses every one of them (see the check below).
_DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105 - a marked placeholder, refused in production
_DEV_JWT_SECRET = "dev-insecure-jwt-secret-change-me"  # noqa: S105
_DEV_ENCRYPTION_KEY = "dev-insecure-encryption-key-change-me"  # noqa: S105
_DEV_AUDIT_MAC_KEY = "dev-insecure-audit-mac-key-change-me"  # noqa: S105
_DEV_PAN_FINGERPRINT_KEY = "dev-insecure-pan-fingerprint-key-change-me"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET_KEY)
# Previous SECRET_KEYs, comma-separated, during a rotation: sessions and password-reset links
# signed with them stay valid (docs/runbooks/rotate-keys.md).
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
JWT_SECRET = env_str("JWT_SECRET", _DEV_JWT_SECRET)
ENCRYPTION_KEY = env_str("ENCRYPTION_KEY", _DEV_ENCRYPTION_KEY)
# Keys the audit trail's HMAC chain. Kept out of the database on purpose: whoever can rewrite the
# audit table cannot recompute the chain without it.
AUDIT_MAC_KEY = env_str("AUDIT_MAC_KEY", _DEV_AUDIT_MAC_KEY)
# Where the chain head's sealed checkpoints are appended (JSON lines; they also go to the log as
# `audit.checkpoint`), and how often: the table owner who can cut the chain's tail can rewind the
# head row too, but not these. Ship the file off the host (docs/runbooks/audit-chain.md).
AUDIT_CHECKPOINT_FILE = Path(env_str("AUDIT_CHECKPOINT_FILE", str(VAR_DIR / "audit-checkpoints.jsonl")))
AUDIT_CHECKPOINT_SECONDS = env_int("AUDIT_CHECKPOINT_SECONDS", 300, minimum=10)
# Card numbers: encrypted with ENCRYPTION_KEY (older keys, comma-separated, still decrypt while
# `manage.py rotate_encryption_key` re-encrypts); fingerprinted with PAN_FINGERPRINT_KEY, which
# must not rotate with the encryption key or every card's history would be orphaned.
ENCRYPTION_OLD_KEYS = tuple(env_list("ENCRYPTION_OLD_KEYS", []))
PAN_FINGERPRINT_KEY = env_str("PAN_FINGERPRINT_KEY", _DEV_PAN_FINGERPRINT_KEY)
# Seals `manage.py backup --encrypt` files and opens them on restore (cipherguard/backup.py).
# Optional: without it backups are plain and must be protected by where they are kept. It must
# not equal another secret: whoever holds a backup and this key must not also hold the key that
# keys the audit chain or card encryption, so keep it in the secret store, apart from both.
BACKUP_ENCRYPTION_KEY = env_str("BACKUP_ENCRYPTION_KEY")
if BACKUP_ENCRYPTION_KEY:
    if len(BACKUP_ENCRYPTION_KEY) < 32:
        raise ImproperlyConfigured("BACKUP_ENCRYPTION_KEY must be at least 32 characters")
    if BACKUP_ENCRYPTION_KEY in {SECRET_KEY, JWT_SECRET, ENCRYPTION_KEY, AUDIT_MAC_KEY, PAN_FINGERPRINT_KEY}:
        raise ImproperlyConfigured("BACKUP_ENCRYPTION_KEY must differ from every other secret")

if IS_PRODUCTION:
    _problems = []
    if DEBUG:
        _problems.append("DEBUG must be off")
    for _name, _value, _placeholder in (
        ("SECRET_KEY", SECRET_KEY, _DEV_SECRET_KEY),
        ("JWT_SECRET", JWT_SECRET, _DEV_JWT_SECRET),
        ("ENCRYPTION_KEY", ENCRYPTION_KEY, _DEV_ENCRYPTION_KEY),
        ("AUDIT_MAC_KEY", AUDIT_MAC_KEY, _DEV_AUDIT_MAC_KEY),
        ("PAN_FINGERPRINT_KEY", PAN_FINGERPRINT_KEY, _DEV_PAN_FINGERPRINT_KEY),
    ):
        if _value == _placeholder:
            _problems.append(f"{_name} is missing or still the development default")
        elif len(_value) < 32:
            _problems.append(f"{_name} must be at least 32 characters")
    if JWT_SECRET == SECRET_KEY:
        _problems.append("JWT_SECRET must differ from SECRET_KEY")
    if _problems:
        raise ImproperlyConfigured("Refusing to start in production: " + "; ".join(_problems))

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if IS_PRODUCTION else ["127.0.0.1", "localhost", "testserver"])
if IS_PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("Refusing to start in production: ALLOWED_HOSTS is empty")

# --- Applications ------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "axes",
    "accounts",
    "audit",
    "fraud",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "cipherguard.middleware.RequestContextMiddleware",
    "cipherguard.middleware.ApiProblemMiddleware",
    "cipherguard.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Inside the session middleware: it marks the session after a write (read your own writes).
    "cipherguard.replica.ReplicaStickinessMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "cipherguard.middleware.ApiNoStoreMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last: it turns a locked-out authentication attempt into a 429 response.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "cipherguard.urls"
WSGI_APPLICATION = "cipherguard.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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

# --- Database ----------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
DB_POOL_SIZE = env_int("DB_POOL_SIZE", 20, minimum=1)
DB_POOL_MIN_SIZE = env_int("DB_POOL_MIN_SIZE", 2, minimum=0)
# A database outage must fail a request fast (503 + Retry-After, cipherguard/dbhealth.py), not
# hold it: a bounded wait for a pooled connection, for a new connection (libpq's minimum is 2 s),
# and for any one statement. Long maintenance statements (migrations, retraining) run in
# processes that may set DB_STATEMENT_TIMEOUT=0 (off).
# The pool wait is short because nothing but an outage makes a process wait for its pool: a sync
# gunicorn worker or a Celery child runs one request or task at a time, so a connection is free
# or made in milliseconds. While the database is down, a sync worker busy waiting cannot even
# answer /readyz (measured: 2 s waits made a readiness probe take 1.97 s).
DB_POOL_TIMEOUT = env_float("DB_POOL_TIMEOUT", 0.5, minimum=0.1)
DB_CONNECT_TIMEOUT = env_int("DB_CONNECT_TIMEOUT", 2, minimum=2)
DB_STATEMENT_TIMEOUT = env_float("DB_STATEMENT_TIMEOUT", 30.0, minimum=0.0)
DB_RETRY_AFTER_SECONDS = env_int("DB_RETRY_AFTER_SECONDS", 5, minimum=1)
# After a request found the database unreachable, a web process answers 503 at once while a
# background thread probes the database this often (cipherguard/dbhealth.py; 0 turns it off).
DB_BREAKER_PROBE_SECONDS = env_float("DB_BREAKER_PROBE_SECONDS", 0.5, minimum=0.0)
if DATABASE_URL:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            **parse_postgres_url(DATABASE_URL),
            # Django's native psycopg pool. max_size bounds the overflow above min_size, and a
            # request that cannot get a connection within `timeout` seconds fails fast instead of
            # queueing forever. A pool requires CONN_MAX_AGE=0 (the pool keeps connections alive).
            "CONN_MAX_AGE": 0,
            # With the pool, Django checks a connection as it is handed out (one round trip): after
            # a database restart the dead ones are replaced instead of failing a request.
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                "pool": {
                    "min_size": min(DB_POOL_MIN_SIZE, DB_POOL_SIZE),
                    "max_size": DB_POOL_SIZE,
                    "timeout": DB_POOL_TIMEOUT,
                    "max_idle": 300,
                    "max_lifetime": 3600,
                },
                "connect_timeout": DB_CONNECT_TIMEOUT,
                # A peer that vanishes (host down, network cut) is noticed in ~10 s, not in hours.
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 3,
                **(
                    {"options": f"-c statement_timeout={int(DB_STATEMENT_TIMEOUT * 1000)}"}
                    if DB_STATEMENT_TIMEOUT
                    else {}
                ),
                # Server-side binding and prepared statements: psycopg prepares a statement once
                # it has run this many times on a connection, and pooled connections then skip
                # planning the hot queries (the feature query planned in ~1.4 ms, ran in ~0.4 ms).
                # 0 turns prepared statements off (needed behind PgBouncer in transaction mode).
                "server_side_binding": True,
                "prepare_threshold": env_int("DB_PREPARE_THRESHOLD", 5, minimum=0) or None,
            },
            "TEST": {"NAME": env_str("TEST_DATABASE_NAME", "test_cipherguard")},
        }
    }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "cipherguard.sqlite3",
            "OPTIONS": {
                # WAL lets the web process read while a background worker writes; IMMEDIATE
                # transactions take the write lock up front instead of failing mid-transaction.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
                "transaction_mode": "IMMEDIATE",
            },
        }
    }

# Optional read replica (PostgreSQL streaming replica): read-only analytics opt in to it and fall
# back to the primary when it is down, lags or the user just wrote (cipherguard/replica.py).
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL")
DATABASE_REPLICA_MAX_LAG_SECONDS = env_float("DATABASE_REPLICA_MAX_LAG_SECONDS", 10.0, minimum=0.0)
DATABASE_REPLICA_CHECK_SECONDS = env_float("DATABASE_REPLICA_CHECK_SECONDS", 5.0, minimum=0.0)
DATABASE_REPLICA_STICKY_SECONDS = env_float("DATABASE_REPLICA_STICKY_SECONDS", 30.0, minimum=0.0)
if DATABASE_REPLICA_URL:
    if not DATABASE_URL:
        raise ImproperlyConfigured("DATABASE_REPLICA_URL needs DATABASE_URL (a replica of PostgreSQL)")
    _replica_pool = dict(DATABASES["default"]["OPTIONS"]["pool"])
    # A replica that stops answering must fail fast: the view then runs again on the primary.
    _replica_pool["timeout"] = min(DB_POOL_TIMEOUT, 2.0)
    DATABASES["replica"] = {
        "ENGINE": "django.db.backends.postgresql",
        **parse_postgres_url(DATABASE_REPLICA_URL),
        "CONN_MAX_AGE": 0,
        "OPTIONS": {"pool": _replica_pool},
        # Tests read the replica of the test database itself.
        "TEST": {"MIRROR": "default"},
    }
DATABASE_ROUTERS = ["cipherguard.replica.ReplicaRouter"]

# --- Cache -------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
REDIS_MAX_CONNECTIONS = env_int("REDIS_MAX_CONNECTIONS", 100, minimum=1)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "cg",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "CONNECTION_POOL_KWARGS": {"max_connections": REDIS_MAX_CONNECTIONS},
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "cipherguard"}}

# --- Celery ------------------------------------------------------------------------------------
# No broker configured: the embedded default is kombu's filesystem transport under var/, which a
# worker started by `make run` consumes; jobs never run inside the HTTP request. The host part means
# nothing to that transport, but without one kombu warns on every start that none was supplied.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://localhost//")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(VAR_DIR / "celery" / "queue"),
        "data_folder_out": str(VAR_DIR / "celery" / "queue"),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        # Where kombu keeps its exchange table; its default is ./control, in whatever folder a
        # process happened to start in.
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 7200, minimum=60), "socket_connect_timeout": 2}
)
# A broker that is down must not hold an HTTP request for long: a publish gives up within about
# 3 s (connect 2 s, then two quick retries), and what was not queued is resumed later
# (fraud/batches/services.py).
CELERY_BROKER_CONNECTION_TIMEOUT = 2.0
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3300, minimum=10)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3600, minimum=10)
CELERY_TASK_ALWAYS_EAGER = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "cipherguard"
# Periodic work, all of it, in one place (times are UTC).
RETRAIN_SCHEDULE = env_str("RETRAIN_SCHEDULE", "weekly")  # weekly | daily | off
_RETRAIN_CRON = {"weekly": {"day_of_week": "mon", "hour": 3, "minute": 0}, "daily": {"hour": 3, "minute": 0}}
if RETRAIN_SCHEDULE not in {*_RETRAIN_CRON, "off"}:
    raise ImproperlyConfigured(f"RETRAIN_SCHEDULE must be weekly, daily or off, got {RETRAIN_SCHEDULE!r}")


def _beat_schedule() -> dict[str, dict[str, object]]:
    schedule: dict[str, dict[str, object]] = {
        # Every 10 s: re-queue batch jobs with a lane whose worker died (no sign of life for
        # BATCH_STALL_SECONDS; a chunk being worked on is locked and never taken for stalled).
        "resume-stalled-batch-jobs": {"task": "fraud.tasks.batch_jobs_resume_stalled", "schedule": 10.0},
        # Every day at 01:10: yesterday's score and feature drift against the training data.
        "daily-drift-report": {"task": "fraud.tasks.drift_report_daily", "schedule": crontab(hour=1, minute=10)},
        # Every 5 minutes by default (AUDIT_CHECKPOINT_SECONDS): seal the audit chain head into the log and a file.
        "audit-checkpoint": {"task": "audit.tasks.audit_checkpoint_write", "schedule": float(AUDIT_CHECKPOINT_SECONDS)},
        # Every 5 s: send webhook deliveries that are due (retries, and any whose worker died).
        "webhook-sweep": {"task": "fraud.tasks.webhooks_send_due", "schedule": 5.0},
        # Every day at 02:40: drop webhook events older than WEBHOOK_RETENTION_DAYS that are settled.
        "webhook-prune": {"task": "fraud.tasks.webhook_events_prune", "schedule": crontab(hour=2, minute=40)},
    }
    if RETRAIN_SCHEDULE != "off":
        # Every Monday at 03:00 by default: train a candidate and compare it with the live model.
        schedule["retrain"] = {
            "task": "fraud.tasks.model_retrain",
            "schedule": crontab(**_RETRAIN_CRON[RETRAIN_SCHEDULE]),
        }
    return schedule


CELERY_BEAT_SCHEDULE = _beat_schedule()
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Batch jobs ----------------------------------------------------------------------------------
# 10,000 rows a chunk: each chunk reads its customers' and merchants' recent history once, so
# larger chunks amortise that read (2,000-row chunks spent 40 % of their time there).
BATCH_CHUNK_SIZE = env_int("BATCH_CHUNK_SIZE", 10_000, minimum=10, maximum=50_000)
# A job's rows are dealt into this many lanes by customer, scored in parallel by as many worker
# processes (a customer's rows stay in one lane, in order). 1 scores a job one chunk at a time.
BATCH_LANES = env_int("BATCH_LANES", 2, minimum=1, maximum=64)
BATCH_MAX_UPLOAD_BYTES = env_int("BATCH_MAX_UPLOAD_BYTES", 200 * 1024 * 1024, minimum=1024)
BATCH_MAX_JSON_ITEMS = env_int("BATCH_MAX_JSON_ITEMS", 10_000, minimum=1)
# A lane of a batch job whose next chunk was queued this long ago (its previous chunk committed,
# or a resume) and that no worker holds locked has lost its worker or its message. With the
# 10-s resume, a job whose worker died resumes within 40 s of a worker being available.
BATCH_STALL_SECONDS = env_int("BATCH_STALL_SECONDS", 30, minimum=1)
MODEL_AUTO_PROMOTE_MARGIN = env_float("MODEL_AUTO_PROMOTE_MARGIN", -1.0)  # < 0: never promote automatically

# --- Auth --------------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out username before the password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Lockout per username (not per IP: attackers rotate addresses), after 10 failures, for 30
# minutes. Console, admin and token requests all authenticate through Django, so all count.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 10, minimum=3, maximum=10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 30, minimum=30))
AXES_LOCKOUT_PARAMETERS = ["username"]
# axes.W006 asks for per-IP lockout too; we decline on purpose: one attacker could then lock out a
# whole office behind one NAT address. Per-IP abuse is the rate limiter's job.
# models.W040: SQLite ignores the covering indexes' INCLUDE columns; they are for PostgreSQL.
SILENCED_SYSTEM_CHECKS = ["axes.W006", "models.W040"]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_VERBOSE = False
# Analysts are signed out after 15 idle minutes; every request pushes the expiry forward.
SESSION_COOKIE_AGE = 15 * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.CachedJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["cipherguard.api.SafeJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "cipherguard.api.Pagination",
    "DEFAULT_THROTTLE_CLASSES": ["cipherguard.ratelimit.ApiThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "cipherguard.api.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "PAGE_SIZE": 50,
}
API_MAX_PAGE_SIZE = 200
# An API client's user row is reused for this long per process (accounts/authentication.py):
# deactivation, role and quota changes reach every web process within it. 0 reads it every time.
API_USER_CACHE_SECONDS = env_float("API_USER_CACHE_SECONDS", 10.0, minimum=0.0, maximum=300.0)

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15, minimum=1, maximum=60)),
    "REFRESH_TOKEN_LIFETIME": timedelta(hours=env_int("JWT_REFRESH_HOURS", 24, minimum=1, maximum=24 * 30)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SECRET,
    "AUDIENCE": env_str("JWT_AUDIENCE", "cipherguard-api"),
    "ISSUER": env_str("JWT_ISSUER", "cipherguard"),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "CipherGuard API",
    "DESCRIPTION": "Real-time payment-fraud scoring: scores, decisions and their reasons.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "cipherguard.api.strict_request_components",
        "cipherguard.api.document_uri_too_long",
        # Each app's own additions (cipherguard/hooks.py): the webhook payloads' schemas.
        "cipherguard.hooks.openapi_app_hooks",
    ],
    # The schema and docs UI are public in development; production requires a signed-in user
    # (an admin session in the browser, or a JWT).
    "SERVE_PERMISSIONS": [
        "rest_framework.permissions.IsAuthenticated" if IS_PRODUCTION else "rest_framework.permissions.AllowAny"
    ],
    "SERVE_AUTHENTICATION": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    # One name per choice set: a decision is a decision whether a model or a rule made it.
    "ENUM_NAME_OVERRIDES": {
        "DecisionEnum": "fraud.models.Decision",
        "ListActionEnum": "fraud.models.ListAction",
        "WebhookEventTypeEnum": "fraud.webhooks.apis.CLIENT_EVENT_TYPES",
        "WebhookDeliveryStatusEnum": "fraud.models.WebhookDeliveryStatus",
    },
}

# --- Fraud scoring -----------------------------------------------------------------------------
# Initial decision thresholds; admins change the stored values without a restart.
FRAUD_THRESHOLD = env_float("FRAUD_THRESHOLD", 0.5, minimum=0.0, maximum=1.0)
FRAUD_DECLINE_THRESHOLD = env_float("FRAUD_DECLINE_THRESHOLD", 0.9, minimum=0.0, maximum=1.0)
if FRAUD_THRESHOLD >= FRAUD_DECLINE_THRESHOLD:
    raise ImproperlyConfigured("FRAUD_THRESHOLD (review) must be below FRAUD_DECLINE_THRESHOLD")
# Labels become known only after a delay (chargebacks take days to weeks); merchant-risk features
# only count transactions at least this many days old, so training and serving see the same thing.
FRAUD_LABEL_DELAY_DAYS = env_int("FRAUD_LABEL_DELAY_DAYS", 7, minimum=0, maximum=90)
# Where a scored transaction's merchant aggregates come from: "store" its hour and day buckets
# (fraud/features/buckets.py), "history" its raw rows in its windows (37 days). The database keeps
# the store either way and the features are identical. The store's read time does not grow with a
# merchant's traffic (measured: p50 1.7 ms at 11 and at 111 payments a day per merchant, where
# history took 1.4 and 4.0 ms; docs/performance.md, "The feature store").
FRAUD_FEATURE_READ = env_str("FRAUD_FEATURE_READ", "store")
if FRAUD_FEATURE_READ not in {"history", "store"}:
    raise ImproperlyConfigured("FRAUD_FEATURE_READ must be 'history' or 'store'")
FRAUD_MAX_AMOUNT = env_str("FRAUD_MAX_AMOUNT", "1000000")
FRAUD_MAX_FUTURE_SKEW_SECONDS = env_int("FRAUD_MAX_FUTURE_SKEW_SECONDS", 300, minimum=0)
FRAUD_BATCH_MAX_ITEMS = env_int("FRAUD_BATCH_MAX_ITEMS", 1000, minimum=1, maximum=10000)
FRAUD_REASONS_TOP_K = env_int("FRAUD_REASONS_TOP_K", 3, minimum=1, maximum=10)
# How often a web process re-reads the active model and thresholds (a change made in this process
# applies at once; other processes pick it up within this many seconds).
FRAUD_RUNTIME_REFRESH_SECONDS = env_float("FRAUD_RUNTIME_REFRESH_SECONDS", 5.0, minimum=0.0)
MODEL_ARTIFACT_DIR = Path(env_str("MODEL_ARTIFACT_DIR", str(VAR_DIR / "models")))

# --- Cases and the console -----------------------------------------------------------------------
# Which decisions open a case for analysts, and how long analysts have to close one.
FRAUD_CASE_DECISIONS = env_list("FRAUD_CASE_DECISIONS", ["review", "decline"])
FRAUD_CASE_SLA_HOURS = env_int("FRAUD_CASE_SLA_HOURS", 24, minimum=1, maximum=24 * 30)
CONSOLE_PAGE_SIZE = 25
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:queue"
LOGOUT_REDIRECT_URL = "console:login"
# Append-only triggers on the audit tables, created by migration. Only the test overlay turns
# them off (tests install the same triggers per test; see audit/db.py).
AUDIT_TRIGGERS = True

# Rate limits (django-ratelimit, counted in the cache: Redis in production). Per IP on the token
# endpoints and the console login; per API client on the API, an hourly quota (raised per client
# by admins) and a per-second burst limit. See docs/security.md for what happens without Redis.
RATE_LIMIT_ENABLED = env_bool("RATE_LIMIT_ENABLED", True)
RATE_LIMIT_PER_MINUTE = env_int("RATE_LIMIT_PER_MINUTE", 60, minimum=1)  # console sign-in, per IP
# Token requests with a password, per IP. Defaults to RATE_LIMIT_PER_MINUTE, which covered all
# token requests before refresh had its own limit, so existing deployments keep their value.
RATE_LIMIT_TOKEN_PER_MINUTE = env_int("RATE_LIMIT_TOKEN_PER_MINUTE", RATE_LIMIT_PER_MINUTE, minimum=1)
# Token refreshes, per IP and account (accounts/apis.py): clients behind one NAT each get their own
# budget, and refreshing never uses up sign-in's.
RATE_LIMIT_REFRESH_PER_MINUTE = env_int("RATE_LIMIT_REFRESH_PER_MINUTE", 60, minimum=1)
RATE_LIMIT_USER_PER_HOUR = env_int("RATE_LIMIT_USER_PER_HOUR", 1000, minimum=1)
RATE_LIMIT_BURST_PER_SECOND = env_int("RATE_LIMIT_BURST_PER_SECOND", 20, minimum=1)
RATELIMIT_ENABLE = RATE_LIMIT_ENABLED
RATELIMIT_USE_CACHE = "default"

# --- Webhooks ----------------------------------------------------------------------------------
# The version stamped on every event; a payload's documented shape changes only with it.
WEBHOOK_API_VERSION = "2026-12-01"
# Production posts to https only; development and tests may use http.
WEBHOOKS_HTTPS_ONLY = env_bool("WEBHOOKS_HTTPS_ONLY", IS_PRODUCTION)
# The SSRF guard refuses private, loopback, link-local and reserved addresses, at save and before
# every delivery. An operator may trust some networks anyway (CIDR list, e.g. an internal receiver).
WEBHOOKS_ALLOWED_NETWORKS = env_list("WEBHOOKS_ALLOWED_NETWORKS", [])
WEBHOOK_CONNECT_TIMEOUT = env_float("WEBHOOK_CONNECT_TIMEOUT", 3.0, minimum=0.1, maximum=30.0)
WEBHOOK_READ_TIMEOUT = env_float("WEBHOOK_READ_TIMEOUT", 10.0, minimum=0.1, maximum=60.0)
# A worker holds a delivery this long; if it dies mid-send, the next sweep sends it again after.
# Longer than a whole attempt (connect + read timeouts), so a slow answer is never sent twice.
WEBHOOK_LEASE_SECONDS = env_int("WEBHOOK_LEASE_SECONDS", 60, minimum=5)
if WEBHOOK_LEASE_SECONDS < 2 * (WEBHOOK_CONNECT_TIMEOUT + WEBHOOK_READ_TIMEOUT):
    # A batch starts its last POST before half its lease, and a POST takes up to both timeouts.
    raise ImproperlyConfigured(
        "WEBHOOK_LEASE_SECONDS must be at least twice WEBHOOK_CONNECT_TIMEOUT + WEBHOOK_READ_TIMEOUT, "
        "or a slow receiver could be sent the same event twice at once"
    )
# Seconds to wait after each failed attempt (Standard Webhooks' schedule, ±20 % jitter): eight
# attempts over about 28 hours, then the delivery is given up (and can be re-sent by hand).
WEBHOOK_RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 36000)
# An endpoint whose every delivery has failed for this long is disabled, and says why.
WEBHOOK_DISABLE_AFTER_HOURS = env_int("WEBHOOK_DISABLE_AFTER_HOURS", 24, minimum=1)
# After a rotation the previous secret keeps signing for this long (a client may ask for less).
WEBHOOK_SECRET_OVERLAP_HOURS = env_int("WEBHOOK_SECRET_OVERLAP_HOURS", 24, minimum=0, maximum=24 * 7)
WEBHOOK_MAX_ENDPOINTS = env_int("WEBHOOK_MAX_ENDPOINTS", 10, minimum=1)
# How many due deliveries one sweep hands to the workers.
WEBHOOK_SWEEP_BATCH = 500
# The delivery log (events, deliveries, attempts) is kept this long, then pruned nightly.
WEBHOOK_RETENTION_DAYS = env_int("WEBHOOK_RETENTION_DAYS", 30, minimum=1)

# --- Metrics -----------------------------------------------------------------------------------
# /metrics (Prometheus). With METRICS_TOKEN set, scrapes must send `Authorization: Bearer <token>`;
# without one it is open in development and closed (404) in production.
METRICS_TOKEN = env_str("METRICS_TOKEN")
if IS_PRODUCTION and METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("Refusing to start in production: METRICS_TOKEN must be at least 32 characters")
# The Celery worker serves its task metrics on this port (0: off); see cipherguard/celery.py.
METRICS_PORT = env_int("METRICS_PORT", 0, minimum=0, maximum=65535)
PROMETHEUS_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    float("inf"),
)  # fmt: skip

# --- HTTP --------------------------------------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024, minimum=1024)
SECURE_CONTENT_TYPE_NOSNIFF = True
# Everything is served by us: scripts only from our origin, no inline script anywhere (inline
# style attributes carry the score colours). The docs UI loads its script from a URL too.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = IS_PRODUCTION
CSRF_COOKIE_SECURE = IS_PRODUCTION
if IS_PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Probes and scrapes come over plain HTTP from inside the cluster, not through the proxy.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# In development whitenoise serves straight from the finders; production serves the collected,
# hashed files (`manage.py collectstatic`, run by `make run` and the Docker build).
WHITENOISE_USE_FINDERS = DEBUG or ENVIRONMENT == "test"
WHITENOISE_AUTOREFRESH = DEBUG or ENVIRONMENT == "test"

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
# JSON lines by default (one object per record, with the request id); LOG_FORMAT=plain for humans.
LOG_FORMAT = env_str("LOG_FORMAT", "plain" if DEBUG else "json")
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "cipherguard.logs.RequestIdFilter"},
        "redact": {"()": "cipherguard.logs.RedactingFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "plain": {
            "()": "cipherguard.logs.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id", "redact"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
