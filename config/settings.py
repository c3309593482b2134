"""Settings, read from the environment (12-factor). Every variable is listed in README.md."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def envbool(name: str, default: bool) -> bool:
    """A yes/no setting; anything but the usual spellings is an error, not False."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value not in _TRUE | _FALSE:
        raise ImproperlyConfigured(
            f"{name} must be one of {', '.join(sorted(_TRUE | _FALSE))}; got {value!r}"
        )
    return value in _TRUE


def envint(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY in the environment, "
            "or DEBUG=1 for a development key."
        )
    SECRET_KEY = "django-insecure-development-key-do-not-use-in-production"

# Secret env values are encrypted in the database with these Fernet keys, comma-separated:
# the first encrypts, all decrypt (rotation: README, Secrets). Unset: var/secret-encryption-key,
# made on first need when DEBUG is on (make run); with DEBUG off, required.
SECRET_ENCRYPTION_KEY = envlist("SECRET_ENCRYPTION_KEY", "")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

# HTTPS. Secure by default when DEBUG is off (`manage.py check --deploy` is clean), relaxed
# with DEBUG on (make run, the tests); each one can be set for a deployment.
# Redirect plain HTTP to HTTPS; health/ is exempt so a probe over plain HTTP still answers.
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not DEBUG)
# /metrics too: Prometheus scrapes over plain HTTP on loopback or a private network.
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health/$", r"^metrics$"]
# Strict-Transport-Security: browsers use only HTTPS for this long (a year), subdomains too.
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 86400)
# Both reach beyond this site (every subdomain; browsers' built-in lists, slow to leave):
# a deployment opts in. check --deploy's warnings for them are silenced as that choice.
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]
# Session and CSRF cookies are sent over HTTPS only.
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", not DEBUG)
# Behind a TLS proxy: the header it sets on requests that came in over HTTPS, as
# "Name" (value https) or "Name: value", e.g. "X-Forwarded-Proto". Set it only when the
# proxy always sets or strips that header, or a client could claim HTTPS.
_proxy_ssl_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "").strip()
if _proxy_ssl_header:
    _name, _, _value = _proxy_ssl_header.partition(":")
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + _name.strip().upper().replace("-", "_"),
        _value.strip() or "https",
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "scheduler_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # First: an oversized body is refused before sessions or auth are read.
    "scheduler_app.middleware.BodyTooLargeMiddleware",
    # Errors Django answers itself under /api/ (no route matches) in JSON, as the API's.
    "scheduler_app.middleware.ApiJsonErrorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who acts and from where, for the audit log (scheduler_app/audit.py).
    "scheduler_app.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "scheduler_app.middleware.DatabaseAwayMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# Database: DATABASE_URL, or an embedded SQLite file under var/.
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'scheduler.sqlite3'}"
# Connections kept a minute: a worker otherwise connects for every run, which halved its
# throughput (benchmarks/bench_worker.py); health-checked before reuse (below).
DB_CONN_MAX_AGE = envint("DB_CONN_MAX_AGE", 60)
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=DB_CONN_MAX_AGE,
        # A kept connection is checked (SELECT 1) before a task or request reuses it, so
        # a database restarted meanwhile costs a reconnect, not a failed task.
        conn_health_checks=envbool("DB_CONN_HEALTH_CHECKS", True),
    )
}
# PostgreSQL: the run path's few plain statements (scheduler_app/runs.py) are prepared on
# the connection after 5 runs, so the server plans them once, not for every run (issue
# 12); Django prepares nothing else. Off (DB_PREPARED_STATEMENTS=0) behind a pooler that
# cannot hold them (PgBouncer in transaction mode before 1.21 or without
# max_prepared_statements).
_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
if _POSTGRES and envbool("DB_PREPARED_STATEMENTS", True):
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # VAR_DIR itself is made by manage.py and the test setup, not here: settings
    # are read by every process and must not touch the disk.
    # Web, beat and workers are separate processes writing one file: WAL lets readers
    # go on during a write, IMMEDIATE takes the write lock up front (no upgrade
    # deadlocks) and the timeout makes writers wait instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests share the database with real worker processes, so it must be a file.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Passwords are checked behind a per-account backoff (scheduler_app/login_guard.py): after
# LOGIN_FAILURE_LIMIT failures (0: no backoff) an account is locked LOGIN_LOCKOUT_SECONDS,
# doubled at each further failure up to LOGIN_LOCKOUT_MAX_SECONDS; a success unlocks it.
AUTHENTICATION_BACKENDS = ["scheduler_app.login_guard.LockoutModelBackend"]
LOGIN_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)
LOGIN_LOCKOUT_SECONDS = envint("LOGIN_LOCKOUT_SECONDS", 60)
LOGIN_LOCKOUT_MAX_SECONDS = envint("LOGIN_LOCKOUT_MAX_SECONDS", 3600)
# API tokens expire this many seconds after they were issued (0: never).
API_TOKEN_TTL = envint("API_TOKEN_TTL", 0)
# How many proxies in front of the web server append to X-Forwarded-For: the client
# address for throttling is read that far from its end; 0 ignores the header.
TRUSTED_PROXY_COUNT = envint("TRUSTED_PROXY_COUNT", 0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    # The files ``file`` jobs deploy (POST /api/v1/files/): the local disk by default;
    # with several hosts, a storage every worker reads, e.g. django-storages' S3:
    # SCHEDULER_FILES_STORAGE=storages.backends.s3.S3Storage and its options as JSON in
    # SCHEDULER_FILES_STORAGE_OPTIONS ({"bucket_name": "...", "location": "files"}).
    "files": {
        "BACKEND": os.environ.get(
            "SCHEDULER_FILES_STORAGE", "django.core.files.storage.FileSystemStorage"
        ),
        "OPTIONS": json.loads(
            os.environ.get("SCHEDULER_FILES_STORAGE_OPTIONS")
            or json.dumps({"location": str(VAR_DIR / "files")})
        ),
    },
}

# Request bodies. A body (not counting uploaded files) over API_MAX_BODY_BYTES is a 413
# with a JSON message (scheduler_app/middleware.py), not Django's 400 page; JSON nested
# deeper than API_MAX_JSON_DEPTH is a 400 (scheduler_app/api/parsers.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("API_MAX_BODY_BYTES", 1024 * 1024)
API_MAX_JSON_DEPTH = envint("API_MAX_JSON_DEPTH", 32)
# POST /api/v1/import/ (scheduler_app/porting): the file's size and its items at most.
PORTING_MAX_CONTENT_BYTES = envint("PORTING_MAX_CONTENT_BYTES", 1024 * 1024)
PORTING_MAX_ITEMS = envint("PORTING_MAX_ITEMS", 5000)

# REST API
REST_FRAMEWORK = {
    "DEFAULT_PARSER_CLASSES": [
        "scheduler_app.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",  # no files taken: capped whole (middleware)
    ],
    # Token first, so a request without credentials gets 401 with WWW-Authenticate.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "scheduler_app.api.auth.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "scheduler_app.api.pagination.Pagination",
    "DEFAULT_FILTER_BACKENDS": ["scheduler_app.api.filtering.FilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "scheduler_app.api.schema.CronfleetAutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "scheduler_app.api.auth.AnonThrottle",
        "scheduler_app.api.auth.UserThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("API_ANON_RATE", "60/minute"),
        "user": os.environ.get("API_USER_RATE", "6000/minute"),
        # The token endpoint: per client address, and per username from any address.
        "login": os.environ.get("API_LOGIN_RATE", "20/minute"),
        "login_account": os.environ.get("API_LOGIN_ACCOUNT_RATE", "10/minute"),
    },
    # The client address is X-Forwarded-For's entry this far from the end; 0: REMOTE_ADDR.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Cronfleet API",
    "DESCRIPTION": "Define jobs and schedules, run them on a pool of workers, see every run.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from our own static files: the docs work without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The API reads JSON ("JSON in and out"); the form parsers are there for the browsable
    # API only, and a form cannot carry what a job's fields need (objects, null).
    "PARSER_WHITELIST": ["scheduler_app.api.parsers.BoundedJSONParser"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "scheduler_app.api.schema.add_links",  # a created row's id to its operations
    ],
}

# Redis: the Celery broker and the home of the RedBeat schedule.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# Django's cache, on Redis, shared by every web process: the API throttles and the login
# backoff count there (scheduler_app/cache.py: a process-local store while Redis is away).
CACHES = {
    "default": {
        "BACKEND": "scheduler_app.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "cronfleet-cache",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}

# Flower reads FLOWER_BASIC_AUTH (user:password) from the environment itself: it never runs
# without it (make run makes one, make flower and docker/compose.yaml require one).
# The dashboard's slow figures (runs per hour, per-job health, the timeline) are kept this
# many seconds per user and window (scheduler_app/api/dashboard.py); 0 computes every call.
DASHBOARD_CACHE_SECONDS = envint("DASHBOARD_CACHE_SECONDS", 10)

CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A message not acknowledged within this time is given to another worker. Tasks
    # acknowledge late (after the run), so it must exceed the longest job timeout
    # plus its retry delay; see the system check in scheduler_app/checks.py.
    "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 3 * 86400),
    # Ten priority levels per queue, served 0 first (see services.broker_priority).
    "priority_steps": list(range(10)),
    "sep": ":",
    "queue_order_strategy": "priority",
}
# Each worker also consumes a queue of its own, so a fan-out child reaches its node.
CELERY_WORKER_DIRECT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# The modules of the operator's own Celery tasks (a `beat_schedule` moved here names them):
# imported by every process, so `celery` jobs may call their tasks. Trusted code only.
CELERY_IMPORTS = envlist("SCHEDULER_TASK_MODULES", "")
CELERY_TASK_SEND_SENT_EVENT = True
# Task events cost each run three messages: off unless asked for. Flower turns them on in
# every worker it watches (its --enable_events, on by default), so it still shows tasks.
CELERY_WORKER_SEND_TASK_EVENTS = envbool("CELERY_WORKER_SEND_TASK_EVENTS", False)
# Celery's Django fixup closes a worker's database connections around every task, whatever
# DB_CONN_MAX_AGE says, unless told to reuse them; then workers/tasks.py applies Django's
# own rule around each task, as around a web request.
if DB_CONN_MAX_AGE:
    CELERY_DB_REUSE_MAX = 2**31
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_BEAT_SCHEDULER = "scheduler_app.redbeat:JobScheduler"
# Beat wakes at least this often, so a job created a moment ago fires on time.
CELERY_BEAT_MAX_LOOP_INTERVAL = envint("BEAT_MAX_LOOP_INTERVAL", 1)
# Seconds between the sweeps for silent runs and lost messages (workers.reap_lost).
REAP_EVERY = envint("REAP_EVERY", 60)
# Static entries beside the jobs: RedBeat keeps them in Redis too.
CELERY_BEAT_SCHEDULE = {
    "reap-lost-runs": {"task": "workers.reap_lost", "schedule": float(REAP_EVERY)},
    "prune-runs": {"task": "workers.prune_runs", "schedule": float(envint("PRUNE_EVERY", 3600))},
}
CELERY_REDBEAT_REDIS_URL = REDIS_URL
CELERY_REDBEAT_REDIS_OPTIONS: dict = {}
CELERY_REDBEAT_KEY_PREFIX = os.environ.get("REDBEAT_KEY_PREFIX", "redbeat:")
CELERY_REDBEAT_LOCK_TIMEOUT = envint("REDBEAT_LOCK_TIMEOUT", 10)
# Beat's fires publish no task-sent event unless asked: one per fire cost as much as the
# fire itself (issue 12's profile); Flower still sees each fire received and run.
SCHEDULER_BEAT_SENT_EVENTS = envbool("SCHEDULER_BEAT_SENT_EVENTS", False)

# GET /metrics (Prometheus): with METRICS_TOKEN set, only "Authorization: Bearer <token>";
# unset, only requests from loopback that came through no proxy (scheduler_app/metrics_view.py).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# Each worker writes its presence to Redis this often (seconds); /metrics counts as up the
# workers seen within three periods (scheduler_app/presence.py).
WORKER_PRESENCE_EVERY = envint("WORKER_PRESENCE_EVERY", 5)
# The fleet (scheduler_app/nodes.py): each worker registers as a node. Its name (default:
# the Celery hostname), the address it shows (default: its address towards the broker),
# its labels ("role=db,zone=eu"). It is offline when silent this many seconds; its row's
# last_seen is refreshed every SCHEDULER_NODE_DB_EVERY seconds (Redis has the fresher one).
SCHEDULER_NODE_NAME = os.environ.get("SCHEDULER_NODE_NAME", "")
SCHEDULER_NODE_ADDRESS = os.environ.get("SCHEDULER_NODE_ADDRESS", "")
SCHEDULER_NODE_LABELS = os.environ.get("SCHEDULER_NODE_LABELS", "")
SCHEDULER_NODE_OFFLINE_AFTER = envint("SCHEDULER_NODE_OFFLINE_AFTER", 3 * WORKER_PRESENCE_EVERY)
SCHEDULER_NODE_DB_EVERY = envint("SCHEDULER_NODE_DB_EVERY", 30)

# Job execution
SCHEDULER_OUTPUT_LIMIT = envint("SCHEDULER_OUTPUT_LIMIT", 64 * 1024)
SCHEDULER_KILL_GRACE = envint("SCHEDULER_KILL_GRACE", 5)
SCHEDULER_LOG_FLUSH_SECONDS = float(os.environ.get("SCHEDULER_LOG_FLUSH_SECONDS", "1.0"))
# A running run whose worker wrote no heartbeat (with its output, every flush) for this
# many seconds is lost; a queued run not claimed this long after it was due is sent again.
SCHEDULER_HEARTBEAT_TIMEOUT = envint("SCHEDULER_HEARTBEAT_TIMEOUT", 30)
SCHEDULER_REQUEUE_AFTER = envint("SCHEDULER_REQUEUE_AFTER", 300)
# How long a worker keeps a finished run's outcome, trying again, while the database is away.
SCHEDULER_DB_RETRY_SECONDS = envint("SCHEDULER_DB_RETRY_SECONDS", 600)
# A worker told to stop (SIGTERM) lets its running jobs finish this long, then kills
# them and records them lost.
SCHEDULER_SHUTDOWN_GRACE = envint("SCHEDULER_SHUTDOWN_GRACE", 60)
SCHEDULER_MAX_TIMEOUT = envint("SCHEDULER_MAX_TIMEOUT", 24 * 3600)
# What a job may hand its child process, checked when the job is saved so that
# "Argument list too long" cannot happen at run time: a command (each of a
# ``commands`` job's, its condition, Python code, a script's arguments together, a
# Celery call as JSON) at most SCHEDULER_MAX_COMMAND_BYTES (UTF-8); the job's env
# (NAME=value, each) at most SCHEDULER_MAX_ENV_BYTES together. Linux passes one
# argument of at most 128 KiB, and all of them with the environment within ARG_MAX
# (checked at start, scheduler_app/checks.py).
SCHEDULER_MAX_COMMAND_BYTES = envint("SCHEDULER_MAX_COMMAND_BYTES", 64 * 1024)
SCHEDULER_MAX_ENV_BYTES = envint("SCHEDULER_MAX_ENV_BYTES", 64 * 1024)
# The dead-man's switch (scheduler_app/alerts.py), checked by a watchdog in every worker
# (one at a time): jobs' missed slots and long runs; and beat itself, which is down when
# an entry of its schedule is overdue this long (longer than a standby's takeover).
SCHEDULER_ALERT_CHECK_EVERY = envint("SCHEDULER_ALERT_CHECK_EVERY", 30)
SCHEDULER_DOWN_AFTER = envint("SCHEDULER_DOWN_AFTER", 120)
SCHEDULER_LONG_RUN_FACTOR = float(os.environ.get("SCHEDULER_LONG_RUN_FACTOR", "2.0"))
# Who hears of the scheduler's own alerts (scheduler_down).
SCHEDULER_ADMIN_EMAILS = envlist("SCHEDULER_ADMIN_EMAILS", "")
SCHEDULER_ADMIN_WEBHOOK = os.environ.get("SCHEDULER_ADMIN_WEBHOOK", "")
SCHEDULER_NAME = os.environ.get("SCHEDULER_NAME", "cronfleet")
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "scheduler@localhost")

# The sandbox for job code (README, "The sandbox"; workers/executors/sandbox.py). Job code
# runs as SCHEDULER_RUN_AS (a user name; unset: ``nobody`` when the worker is root, else the
# worker's own user, which cannot switch); as root only with SCHEDULER_ALLOW_ROOT=1.
SCHEDULER_RUN_AS = os.environ.get("SCHEDULER_RUN_AS", "").strip()
SCHEDULER_ALLOW_ROOT = envbool("SCHEDULER_ALLOW_ROOT", False)
# The interpreter of python, script and pytest jobs; unset: the worker's own when the run-as
# user can start it, else the system's python3 of the same version, lent the worker's packages.
SCHEDULER_PYTHON = os.environ.get("SCHEDULER_PYTHON", "")
# Where each run's own directory (its start directory and HOME) is made; unset: the system's
# temporary directory (TMPDIR, /tmp).
SCHEDULER_WORKSPACES = os.environ.get("SCHEDULER_WORKSPACES", "")
# How a run's processes are all found and killed when it ends: "auto" (a cgroup v2 per run
# where the machine allows it, else the run's marks in /proc/*/environ) or "marker".
SCHEDULER_CONTAINMENT = os.environ.get("SCHEDULER_CONTAINMENT", "auto")
if SCHEDULER_CONTAINMENT not in ("auto", "marker"):
    raise ImproperlyConfigured(
        f'SCHEDULER_CONTAINMENT must be "auto" or "marker"; got {SCHEDULER_CONTAINMENT!r}'
    )
# How a run's child is started: "auto" (the cronfleet-spawn launcher that `make install`
# builds, when it is there; else Python's preexec_fn) or "python" (preexec_fn always).
SCHEDULER_SPAWN = os.environ.get("SCHEDULER_SPAWN", "auto")
if SCHEDULER_SPAWN not in ("auto", "python"):
    raise ImproperlyConfigured(
        f'SCHEDULER_SPAWN must be "auto" or "python"; got {SCHEDULER_SPAWN!r}'
    )

# Scripts, pytest paths and working directories must lie under one of these.
SCHEDULER_ALLOWED_DIRS = envlist("SCHEDULER_ALLOWED_DIRS", str(VAR_DIR / "jobs"))
# Uploaded files (POST /api/v1/files/) are at most this many bytes, counted as they arrive.
SCHEDULER_FILE_MAX_BYTES = envint("SCHEDULER_FILE_MAX_BYTES", 50 * 1024 * 1024)
# Where ``software`` jobs install ``pip`` packages (pip install --target), made by the
# run-as user; it must lie in SCHEDULER_ALLOWED_DIRS. Check commands find it in the
# environment variable of the same name.
SCHEDULER_SOFTWARE_DIR = os.environ.get(
    "SCHEDULER_SOFTWARE_DIR",
    str(Path(SCHEDULER_ALLOWED_DIRS[0]) / "software") if SCHEDULER_ALLOWED_DIRS else "",
)

# Outbound HTTP (``http`` jobs, notification webhooks) goes through the egress guard
# (scheduler_app/egress.py): loopback, private, link-local, unique-local, multicast,
# reserved and cloud-metadata addresses are refused unless listed here, comma-separated:
# addresses or networks (127.0.0.1, 10.0.0.0/8, ::1) or host names (localhost), each
# with an optional :port (127.0.0.1:8000, [::1]:8000). Empty: public addresses only.
SCHEDULER_HTTP_ALLOW = envlist("SCHEDULER_HTTP_ALLOW", "")
# Seconds to wait for a connection (each address tried); the whole request is bounded by
# the job's timeout, a webhook's by SCHEDULER_WEBHOOK_TIMEOUT (both redirects included).
SCHEDULER_HTTP_CONNECT_TIMEOUT = float(os.environ.get("SCHEDULER_HTTP_CONNECT_TIMEOUT", "5"))
SCHEDULER_WEBHOOK_TIMEOUT = float(os.environ.get("SCHEDULER_WEBHOOK_TIMEOUT", "10"))
# Redirects followed (each judged like the first URL), and the bytes of a response body read.
SCHEDULER_HTTP_MAX_REDIRECTS = envint("SCHEDULER_HTTP_MAX_REDIRECTS", 5)
SCHEDULER_HTTP_BODY_LIMIT = envint("SCHEDULER_HTTP_BODY_LIMIT", 64 * 1024)

# Run retention (scheduler_app/retention.py, beat's "prune-runs"): finished runs are
# kept this many days, and at most this many per job; 0 is no limit. Failed runs are
# what someone comes back to look at: by default they stay three times as long.
RUN_RETENTION_DAYS = envint("RUN_RETENTION_DAYS", 30)
RUN_RETENTION_PER_JOB = envint("RUN_RETENTION_PER_JOB", 1000)
RUN_RETENTION_DAYS_FAILED = envint("RUN_RETENTION_DAYS_FAILED", 3 * RUN_RETENTION_DAYS)
RUN_RETENTION_PER_JOB_FAILED = envint("RUN_RETENTION_PER_JOB_FAILED", RUN_RETENTION_PER_JOB)
