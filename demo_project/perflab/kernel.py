"""What one kernel holds: its servers, its lab files and databases, all released at exit.

A lab's database copy and cache folder carry the kernel's pid in their names, so a kernel that
was killed (and never ran its exit hooks) leaves files the next kernel can recognise and remove.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from perflab.errors import ServiceUnavailable
from perflab.processes import pid_alive

__all__ = [
    "belongs_to_dead_kernel",
    "drop_at_exit",
    "drop_postgres_labs",
    "release",
    "remove_at_exit",
    "remove_dead_kernels_files",
    "start_lab_service",
]

_services: dict[str, Any] = {}
_to_remove: set[Path] = set()
_postgres_labs: dict[str, Any] = {}


def start_lab_service(name: str, *, strict: bool | None = None, quiet: bool = False) -> Any:
    """Return this kernel's running server ``name``, starting it on first use.

    A missing binary raises when ``strict`` (or ``PERFLAB_STRICT=1``); otherwise it prints the
    install line and returns None so the notebook can go on with what it can honestly show.
    """
    from perflab import services

    server = _services.get(name)
    if server is not None and server.running:
        return server
    try:
        if name == "postgres":  # one server per user, shared by every kernel that needs it
            from perflab import shared_postgres

            server = shared_postgres.attach()
        else:
            server = services.start_service(name)
    except ServiceUnavailable as exc:
        if strict or (strict is None and services.is_strict()) or quiet:
            raise
        print(f"⚠️  {exc}")
        return None
    _services[name] = server
    return server


def belongs_to_dead_kernel(name: str, separator: str) -> bool:
    """Return True if ``name`` ends with the pid of a process that is gone (not this one)."""
    pid = name.rsplit(separator, 1)[-1]
    return pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid))


def remove_dead_kernels_files(paths: Iterable[Path]) -> None:
    """Remove the lab files among ``paths`` whose kernel is gone."""
    for path in paths:
        if belongs_to_dead_kernel(path.stem, "-"):
            path.unlink(missing_ok=True)


def remove_at_exit(path: Path) -> None:
    """Delete this kernel's lab file (or cache folder) when the kernel exits."""
    if not _to_remove:
        atexit.register(_remove_now)
    _to_remove.add(path)


def _remove_now() -> None:
    for path in list(_to_remove):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def drop_at_exit(server: Any, dbname: str) -> None:
    """Drop this kernel's PostgreSQL lab database ``dbname`` when the kernel exits."""
    # Registered after the services module's own exit hook, so it runs first (atexit is LIFO),
    # while the server is still up.
    if not _postgres_labs:
        atexit.register(drop_postgres_labs)
    _postgres_labs[dbname] = server


def drop_postgres_labs() -> None:
    """Drop every PostgreSQL lab database this kernel made (its servers still running)."""
    if not _postgres_labs:
        return
    from django.db import connections

    connections.close_all()
    for dbname, server in list(_postgres_labs.items()):
        if server.running:
            with contextlib.suppress(Exception):  # exiting anyway; the next setup() reaps it
                server.drop_database(dbname)
    _postgres_labs.clear()


def release() -> None:
    """Let go of everything this kernel holds, as its exit would (for test runners)."""
    drop_postgres_labs()
    _services.clear()
