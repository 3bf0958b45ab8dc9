"""Configure the demo project in this process and point Django at a lab's database.

Everything here works on Django's own objects: settings, the connection handler, migrations.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from perflab import seed as seeding
from perflab.errors import PerflabError, StaleSchema
from perflab.paths import REPO_ROOT

__all__ = [
    "LAB_SECRET_KEY",
    "check_migrations_match_models",
    "configure_django",
    "migrate",
    "schema_version",
    "use_database",
]

# Only for labs: a notebook never serves the internet, and Django refuses to start without one.
LAB_SECRET_KEY = "perflab-lab-only-not-a-secret"


def configure_django() -> None:
    """Set up the demo project's settings in this process (once; later calls do nothing)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # Jupyter runs cells inside an event loop; Django's ORM refuses sync calls from one unless told
    # this is deliberate. A notebook is single-user and sequential, so it is.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    os.environ.setdefault("DJANGO_SECRET_KEY", LAB_SECRET_KEY)
    os.environ.setdefault("DJANGO_DEBUG", "0")
    os.environ.setdefault("DJANGO_DEBUG_TOOLBAR", "0")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
    # Until the lab's database exists, point at nothing real so no stray file is created.
    os.environ.setdefault("DATABASE_URL", "sqlite://:memory:")
    demo = str(REPO_ROOT / "demo_project")
    if demo not in sys.path:  # works without the editable install too (e.g. a bare checkout)
        sys.path.insert(0, demo)

    import django
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    if not apps.ready:
        try:
            django.setup()
        except ImproperlyConfigured as exc:  # a bad DATABASE_URL or CACHE_URL, say
            raise PerflabError(f"The demo project's settings: {exc}") from None


def use_database(db: dict[str, Any]) -> None:
    """Point Django's default connection at ``db``, closing whatever it pointed at before."""
    from django.conf import settings
    from django.contrib.contenttypes.models import ContentType
    from django.db import connections

    connections.close_all()
    # Other aliases (lesson 11's "events") keep their own database: only the lab's copy changes.
    settings.DATABASES = {**settings.DATABASES, "default": db}
    # ConnectionHandler caches its settings and per-thread connections; drop both so the next
    # query opens a connection to the new database (possibly on another engine).
    connections._settings = None
    connections.__dict__.pop("settings", None)
    for alias in list(connections.settings):
        with contextlib.suppress(AttributeError):
            delattr(connections._connections, alias)
    ContentType.objects.clear_cache()


def check_migrations_match_models() -> None:
    """Refuse to build a database from migrations that no longer describe the models."""
    from django.apps import apps
    from django.db.migrations.autodetector import MigrationAutodetector
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.state import ProjectState

    loader = MigrationLoader(None, ignore_no_migrations=True)
    detector = MigrationAutodetector(loader.project_state(), ProjectState.from_apps(apps))
    changes = detector.changes(graph=loader.graph)
    if changes:
        raise StaleSchema(
            "The models changed but no migration describes the change "
            f"(apps: {', '.join(sorted(changes))}). Run "
            "`python demo_project/manage.py makemigrations`, then setup() again; "
            "perflab rebuilds its template database for the new schema by itself."
        )


def schema_version() -> str:
    """Return a short hash of everything that shapes a template database's contents."""
    import django

    digest = hashlib.sha256()
    digest.update(f"django={django.__version__};seed={seeding.SEED_VERSION}".encode())
    migrations = REPO_ROOT / "demo_project" / "shop" / "migrations"
    # The generator's own source too: editing it changes the rows even if SEED_VERSION stays.
    for path in [Path(seeding.__file__), *sorted(migrations.glob("*.py"))]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def migrate() -> None:
    """Apply every migration to the current database, quietly."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
