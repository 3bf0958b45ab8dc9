"""Configure the demo shop from the environment, so each lesson can point it somewhere else.

Every value a lesson changes (database, cache, debug) comes from an environment variable;
the defaults are safe for a public site and convenient for `manage.py runserver` with
DJANGO_DEBUG=1.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent  # demo_project/
REPO_ROOT = BASE_DIR.parent


env = environ.Env()

# --- Debug and secrets ---------------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random string, e.g. "
            "export DJANGO_SECRET_KEY=\"$(python -c 'import secrets; "
            "print(secrets.token_urlsafe(50))')\", or set DJANGO_DEBUG=1 for local development."
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
]

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
    # First, so the toolbar sees the whole request (nothing here compresses responses).
    MIDDLEWARE.insert(0, "debug_toolbar.middleware.DebugToolbarMiddleware")

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
]

# --- Database and cache --------------------------------------------------------------------

# DATABASE_URL examples: sqlite:////tmp/shop.sqlite3, postgres://user:pass@127.0.0.1:5432/shop
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
# A ?conn_max_age=N in DATABASE_URL wins; otherwise DJANGO_CONN_MAX_AGE (0: a new connection
# per request, Django's default).
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DJANGO_CONN_MAX_AGE", default=0))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# CACHE_URL examples: locmemcache://, pymemcache://127.0.0.1:11211, redis://127.0.0.1:6379/0
CACHES = {
    "default": env.cache_url("CACHE_URL", default="locmemcache://"),
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
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=REPO_ROOT / "var" / "static")

# --- Django REST framework -----------------------------------------------------------------

REST_FRAMEWORK = {
    # No pagination yet: a later lesson adds it and measures the difference.
    "DEFAULT_PAGINATION_CLASS": None,
    "PAGE_SIZE": None,
}
