"""Configure the demo shop from the environment, so each lesson can point it somewhere else.

Every value a lesson changes (database, cache, debug) comes from an environment variable;
the defaults are safe for a public site and convenient for `manage.py runserver` with
DJANGO_DEBUG=1.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import django
import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

BASE_DIR = Path(__file__).resolve().parent.parent  # demo_project/
REPO_ROOT = BASE_DIR.parent


env = environ.Env()

# --- Debug and secrets ---------------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. For local use, DJANGO_DEBUG=1 is enough (it uses a "
            "fixed development key); anywhere else, set a long random key, e.g. "
            "export DJANGO_SECRET_KEY=\"$(python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(50))')\""
        )
    SECRET_KEY = "django-insecure-dev-only-never-use-this-key-in-production"

_DEV_HOSTS = ["localhost", "127.0.0.1", "testserver"]
ALLOWED_HOSTS = [*(_DEV_HOSTS if DEBUG else []), *env.list("DJANGO_ALLOWED_HOSTS", default=[])]

# The toolkit sets DJANGO_DEBUG_TOOLBAR=0: the toolbar's own queries would skew measurements.
DEBUG_TOOLBAR = (
    DEBUG
    and env.bool("DJANGO_DEBUG_TOOLBAR", default=True)
    and importlib.util.find_spec("debug_toolbar") is not None
)
INTERNAL_IPS = ["127.0.0.1"]
# On a shared host every local user can reach a loopback port, so an address proves nothing:
# the toolbar (and its /__debug__/ views, whose History and Request panels show other requests'
# cookies) is for a logged-in superuser only. Set even without the toolbar, so any settings
# that install debug_toolbar later get the same gate.
DEBUG_TOOLBAR_CONFIG = {"SHOW_TOOLBAR_CALLBACK": "config.toolbar.show_toolbar"}

# --- Applications --------------------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_extensions",
    "rest_framework",
    "shop",
    "events",  # lesson 11's tables, on their own database alias only (events/routers.py)
]
# django-postgres-extra (partitioned models, lesson 11) requires Django < 6.0: on 6.x it is not
# installed and the events app makes its partitioned table with plain SQL instead. Its app
# ("psqlextra", for the pgmakemigrations and pgpartition commands) stays out of INSTALLED_APPS:
# it refuses to load in a process whose DATABASES has none of its backend (a served shop's
# workers, which get the lab's "default" alone), and the lesson needs only its library.
PSQLEXTRA = importlib.util.find_spec("psqlextra") is not None
DATABASE_ROUTERS = ["events.routers.EventsRouter"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

if DEBUG_TOOLBAR:
    INSTALLED_APPS.append("debug_toolbar")
    # Right after AuthenticationMiddleware: the toolbar asks its callback before calling the rest
    # of the stack, and the callback needs request.user. The toolbar must come after anything
    # that encodes the response body (GZipMiddleware); nothing before it here does.
    _auth = MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware")
    MIDDLEWARE.insert(_auth + 1, "debug_toolbar.middleware.DebugToolbarMiddleware")

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
    # Django's other built-in backend (lesson 20). Listed second, so every page that names a
    # template without `using=` still gets the Django template above; Jinja2 renders only what
    # asks for it: `engines["jinja2"]`, or `render(..., using="jinja2")`.
    {
        "NAME": "jinja2",
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "shop" / "jinja2"],
        "APP_DIRS": False,
        "OPTIONS": {"environment": "shop.jinja2_env.environment"},
    },
]

# --- Database and cache --------------------------------------------------------------------

# django-environ turns a URL it cannot use into an empty or half-filled dict (DATABASE_URL=garbage
# gave DATABASES={"default": {}}, which `check` accepted) or a bare traceback, so each URL is
# checked here and a bad one is refused in one line that names the variable and shows examples.

# Accepted DATABASE_URL forms (a scheme in environ.Env.DB_SCHEMES, and a database name):
#   sqlite:////abs/path/db.sqlite3                  four slashes: an absolute path
#   postgres://user:pass@127.0.0.1:5432/shop        (postgresql:// and pgsql:// too)
#   postgres://user@/shop?host=/path/to/socketdir   libpq's form for a Unix socket directory
#   postgres:////path/to/socketdir/shop             django-environ's form for the same
# Other query parameters (?conn_max_age=60, ?sslmode=...) become settings or OPTIONS.
_DATABASE_URL_EXAMPLES = (
    "sqlite:////abs/path/db.sqlite3",
    "postgres://user@/dbname?host=/path/to/socketdir",
)

# Accepted CACHE_URL forms (a scheme in environ.Env.CACHE_SCHEMES):
#   locmemcache://   dummycache://   filecache:///abs/path   dbcache://table_name
#   pymemcache://127.0.0.1:11211     pymemcache:///path/to/memcached.sock   (a Unix socket)
#   redis://127.0.0.1:6379/0         redis:///path/to/redis.sock?db=0       (a Unix socket)
# Refused: pymemcache://unix:/path (django-environ keeps "unix:" and drops the path),
# unix:///path/redis.sock (a redis-py location, not a cache URL), and memcache:// (its backend,
# MemcachedCache, is gone from Django).
_CACHE_URL_EXAMPLES = ("locmemcache://", "pymemcache:///path/to/memcached.sock")
_MEMCACHED_SCHEMES = {"memcache", "pymemcache", "pylibmc"}


def _redact(url: str) -> str:
    """Mask the URL's password: the URL is about to be printed."""
    return re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", url)


def _scheme(url: str) -> str:
    # Not urlsplit(): it raises on some malformed URLs, and those should get the one-line error.
    scheme, separator, _ = url.partition("://")
    return scheme if separator else ""


def _bad_url(variable: str, url: str, problem: str, examples: tuple[str, ...]) -> Exception:
    return ImproperlyConfigured(
        f"{variable}={_redact(url)!r} {problem}. Examples: {', '.join(examples)}"
    )


def _parse_url(
    variable: str,
    url: str,
    parse: Callable[[str], dict[str, Any]],
    examples: tuple[str, ...],
) -> dict[str, Any]:
    """Return django-environ's settings for the URL, refusing what it rejects or warns about."""
    # Its warnings ("SQLite URL contains host component ..., it will be ignored") mean the URL
    # does not say what its author meant, so they refuse the URL too.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        try:
            return parse(url)
        except (ValueError, UserWarning, ImproperlyConfigured) as exc:
            raise _bad_url(variable, url, f"is not a usable URL ({exc})", examples) from None


def _database_from_url(url: str) -> dict[str, Any]:
    """Return Django's DATABASES entry for DATABASE_URL, or refuse it in one line."""
    if _scheme(url) not in environ.Env.DB_SCHEMES:
        problem = "has no known database scheme (sqlite, postgres, postgresql, pgsql, mysql, ...)"
        raise _bad_url("DATABASE_URL", url, problem, _DATABASE_URL_EXAMPLES)
    config = _parse_url("DATABASE_URL", url, environ.Env.db_url_config, _DATABASE_URL_EXAMPLES)
    options = config.get("OPTIONS", {})
    # libpq's ?host=/socket/dir (and ?port=) would stay in OPTIONS: psycopg honours it there,
    # but dbshell and anything else that reads HOST would not see it.
    for key in ("host", "port"):
        if key in options and not config.get(key.upper()):
            config[key.upper()] = options.pop(key)
    if not config.get("NAME") and "service" not in options:
        raise _bad_url("DATABASE_URL", url, "names no database", _DATABASE_URL_EXAMPLES)
    return config


def _cache_from_url(url: str) -> dict[str, Any]:
    """Return Django's CACHES entry for CACHE_URL, or refuse it in one line."""
    if _scheme(url) not in environ.Env.CACHE_SCHEMES:
        problem = "has no known cache scheme (locmemcache, pymemcache, redis, filecache, ...)"
        raise _bad_url("CACHE_URL", url, problem, _CACHE_URL_EXAMPLES)
    config = _parse_url("CACHE_URL", url, environ.Env.cache_url_config, _CACHE_URL_EXAMPLES)
    parts = urlsplit(url)  # safe: django-environ has just split it the same way
    if parts.scheme in _MEMCACHED_SCHEMES and parts.netloc and parts.path.strip("/"):
        problem = "has a host and a path (for a Unix socket, give only the path)"
        raise _bad_url("CACHE_URL", url, problem, _CACHE_URL_EXAMPLES)
    # django-environ still maps memcache:// to MemcachedCache, which Django 4.1 removed; without
    # this, `check` and the first cache call end in a traceback instead.
    try:
        import_string(config["BACKEND"])
    except ImportError:
        problem = f"needs {config['BACKEND']}, which this Django does not have"
        raise _bad_url("CACHE_URL", url, problem, _CACHE_URL_EXAMPLES) from None
    return config


DATABASES = {
    "default": _database_from_url(
        env.str("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
    ),
}
# A ?conn_max_age=N in DATABASE_URL wins; otherwise DJANGO_CONN_MAX_AGE (0: a new connection
# per request, Django's default).
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DJANGO_CONN_MAX_AGE", default=0))
# Lesson 11's events tables, and nothing else, live on this alias (events/routers.py); perflab
# points it at a database of its own on the learner's PostgreSQL. django-postgres-extra's models
# need its backend here (it refuses to load without a database that uses it).
DATABASES["events"] = _database_from_url(
    env.str("EVENTS_DATABASE_URL", default="postgres://postgres@/perflab_events")
)
if PSQLEXTRA:
    DATABASES["events"]["ENGINE"] = "psqlextra.backend"
# A read replica (lesson 12): DATABASE_REPLICA_URL adds the alias "replica", and the shop's
# router sends reads there and writes to "default". Tests read the alias through the test
# database's own connection (MIRROR): no replica replays a test database.
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = {
        **_database_from_url(env.str("DATABASE_REPLICA_URL")),
        "TEST": {"MIRROR": "default"},
    }
    DATABASE_ROUTERS = [
        *globals().get("DATABASE_ROUTERS", []), "shop.routers.PrimaryReplicaRouter",
    ]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": _cache_from_url(env.str("CACHE_URL", default="locmemcache://")),
}

# --- Auth ----------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Security (safe when DEBUG is off; local HTTP servers can turn the cookie flags off) -----

SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Off by default: the lessons serve plain HTTP on 127.0.0.1. Turn on behind TLS.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)

# --- Internationalisation and time ---------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files --------------------------------------------------------------------------

STATIC_URL = "static/"
# Django's file view for STATIC_ROOT, outside DEBUG too (config/urls.py); lesson 13 only.
SERVE_STATIC_WITH_DJANGO = env.bool("DJANGO_SERVE_STATIC", default=False)
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=REPO_ROOT / "var" / "static")

# --- Services the shop calls ---------------------------------------------------------------

# The carrier's API that the delivery-quote pages wait for (lesson 08 serves a slow stand-in).
CARRIER_API_URL = env.str("CARRIER_API_URL", default="")

# The payment provider signs each webhook call with this shared secret (shop/webhooks.py); with
# no secret set, the webhooks refuse every call.
PAYMENT_WEBHOOK_SECRET = env.str("PAYMENT_WEBHOOK_SECRET", default="")

# Mail: Django's SMTP backend (a lesson starts a local SMTP server that asks for a password).
# Django 6.1 configures it in MAILERS and deprecates the EMAIL_* settings that 5.2 reads.
_SMTP = {
    "host": env.str("DJANGO_EMAIL_HOST", default="localhost"),
    "port": env.int("DJANGO_EMAIL_PORT", default=25),
    "username": env.str("DJANGO_EMAIL_HOST_USER", default=""),
    "password": env.str("DJANGO_EMAIL_HOST_PASSWORD", default=""),
    "timeout": 30,
}
if django.VERSION >= (6, 1):
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                           "OPTIONS": _SMTP}}
else:
    EMAIL_HOST, EMAIL_PORT = _SMTP["host"], _SMTP["port"]
    EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = _SMTP["username"], _SMTP["password"]
    EMAIL_TIMEOUT = _SMTP["timeout"]
DEFAULT_FROM_EMAIL = "shop@example.com"

# Celery (config/celery.py): a broker URL, or no broker and every task runs eagerly in place.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None

# --- Search (lesson 10) --------------------------------------------------------------------

# SearchVector, SearchQuery, TrigramSimilarity and the __search lookup. They run on PostgreSQL
# only; installing the app changes nothing on SQLite.
if importlib.util.find_spec("psycopg") is not None:
    INSTALLED_APPS.append("django.contrib.postgres")

# django-haystack, where installed: a search engine behind one API (shop/search_indexes.py).
# DJANGO_WHOOSH_PATH is the folder of a Whoosh index (pure Python files, no server); without
# it, haystack's simple backend runs a LIKE query per search. A lab points haystack at a Whoosh
# folder of its own at run time.
if importlib.util.find_spec("haystack") is not None:
    INSTALLED_APPS.append("haystack")
    _WHOOSH_PATH = env.str("DJANGO_WHOOSH_PATH", default="")
    HAYSTACK_CONNECTIONS = {
        "default": {"ENGINE": "haystack.backends.whoosh_backend.WhooshEngine",
                    "PATH": _WHOOSH_PATH}
        if _WHOOSH_PATH else {"ENGINE": "haystack.backends.simple_backend.SimpleEngine"},
    }

# --- Django REST framework -----------------------------------------------------------------

REST_FRAMEWORK = {
    # No pagination yet: a later lesson adds it and measures the difference.
    "DEFAULT_PAGINATION_CLASS": None,
    "PAGE_SIZE": None,
}
