"""Give a lab its caches: Django's CACHES built from cache URLs (django-environ), always empty.

Local memory, files and the database need nothing installed; memcached and Redis are real
servers this kernel starts, reached through their private sockets.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import environ

from perflab.kernel import remove_at_exit, start_lab_service
from perflab.paths import state_dir

__all__ = ["CACHES", "add_caches", "cache_settings", "install_caches", "use_cache"]

CACHES = ("locmem", "dummy", "file", "db", "memcached", "redis")


def cache_settings(cache: str, name: str) -> dict[str, Any] | None:
    """Return Django's CACHES entry for backend ``cache``; None if its server is missing."""
    if cache == "locmem":
        url = f"locmemcache://{name}"
    elif cache == "dummy":
        url = "dummycache://"
    elif cache == "file":
        folder = state_dir("caches", f"{name}-{os.getpid()}")
        remove_at_exit(folder)
        url = f"filecache://{folder}"
    elif cache == "db":
        url = "dbcache://perflab_cache"
    else:
        server = start_lab_service(cache)
        if server is None:
            return None
        scheme = "pymemcache" if cache == "memcached" else "rediscache"
        url = f"{scheme}://{server.socket_path}" + ("?db=0" if cache == "redis" else "")
    return environ.Env.cache_url_config(url)


def use_cache(cache: str, name: str, notes: list[str]) -> str:
    """Point Django's default cache at ``cache``; return the backend really in use."""
    backend = cache_settings(cache, name)
    if backend is None:  # the server is not installed (and not strict): say so, use locmem
        notes.append(f"{cache} is not installed, so this lab caches in local memory instead.")
        cache, backend = "locmem", cache_settings("locmem", name)
    install_caches({"default": backend})
    return cache


def add_caches(names: Sequence[str], lab_name: str) -> dict[str, Any]:
    """Add one cache alias per backend named, beside "default"; return the caches by name."""
    from django.conf import settings

    configured = {"default": settings.CACHES["default"]}
    for name in names:
        backend = cache_settings(name, f"{lab_name}-{name}")
        if backend is None:
            print(f"⚠️  {name} is not installed, so this lab has no {name!r} cache.")
            continue
        configured[name] = backend
    caches = install_caches(configured)
    return {name: caches[name] for name in names if name in configured}


def install_caches(configured: dict[str, dict[str, Any]]) -> Any:
    """Make ``configured`` Django's CACHES, every cache empty; return Django's cache handler."""
    from django.conf import settings
    from django.core.cache import caches

    caches.close_all()
    settings.CACHES = configured
    # The handler caches its settings and per-thread connections: drop both.
    caches._settings = None
    caches.__dict__.pop("settings", None)
    for alias in configured:
        with contextlib.suppress(AttributeError):
            delattr(caches._connections, alias)
    if any(b["BACKEND"].endswith("DatabaseCache") for b in configured.values()):
        from django.core.management import call_command

        call_command("createcachetable", verbosity=0)
    # A fresh lab starts with empty caches: values cached from an earlier database copy (a
    # re-run in the same kernel, or reset()) would otherwise answer for rows that changed.
    for alias in configured:
        caches[alias].clear()
    return caches
