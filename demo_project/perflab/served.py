"""What a worker that ``perflab.web.WebServer`` starts imports: settings, overrides, then the app.

gunicorn imports ``perflab.served:application``. This module reads, from the environment the
server was started with, the settings to override (JSON: the lab's own database, a lesson's
cache or middleware) and the application to serve (``module:name``, WSGI or ASGI), applies the
overrides before Django sets itself up, and hands the application over. A SQLite database gets
WAL mode, a busy timeout and immediate transactions, so several workers can write to it.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["application", "apply_overrides", "load"]


def _sqlite_for_several_workers(databases: dict[str, Any]) -> None:
    for database in databases.values():
        if database.get("ENGINE") == "django.db.backends.sqlite3":
            options = database.setdefault("OPTIONS", {})
            options.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL")
            options.setdefault("timeout", 20)
            options.setdefault("transaction_mode", "IMMEDIATE")


def apply_overrides() -> None:
    """Apply PERFLAB_SERVE_SETTINGS to Django's settings, before Django sets itself up."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings

    overrides = json.loads(os.environ.get("PERFLAB_SERVE_SETTINGS") or "{}")
    for name, value in overrides.items():
        setattr(settings, name, value)
    _sqlite_for_several_workers(settings.DATABASES)


def load() -> Any:
    """Apply the overrides, then import and return the application PERFLAB_SERVE_APP names."""
    apply_overrides()
    module, _, name = os.environ.get("PERFLAB_SERVE_APP", "config.wsgi:application").partition(":")
    return getattr(importlib.import_module(module), name)


def _say_booted() -> None:
    """Leave a file for this worker in the server's folder: perflab.web waits for every one."""
    folder = os.environ.get("PERFLAB_SERVE_BOOTED_DIR")
    if folder:
        (Path(folder) / f"booted-{os.getpid()}").touch()


application = load()
_say_booted()
