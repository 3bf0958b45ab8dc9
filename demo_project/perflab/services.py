"""Start real memcached, Redis and PostgreSQL servers by name; never leave them behind.

A lesson about caching or databases measures the real server, not a stand-in. This module is
the front door: ``start_service("redis")``, ``service_available(...)``, ``install_hint(...)``,
``stop_all()``, and the CLI's ``running_services`` / ``stop_recorded`` / ``find_orphans``.
Each server is its own module (``perflab.memcached``, ``perflab.redis_server``,
``perflab.postgres``), on the base class in ``perflab.service_base``; process records and
reaping live in ``perflab.processes``. Each server listens on a Unix socket only, in a folder
private to the learner (0700): no TCP port, no password to leak. Three layers make sure no
server outlives the kernel that started it:

1. ``atexit`` stops every server this process started (normal exit, kernel restart).
2. On Linux the server is launched through util-linux ``setpriv --pdeathsig``, so the kernel sends
   it a stop signal the moment its parent dies, even by SIGKILL.
3. Every start writes a small JSON record (owner pid, server pid, start times); the next start, in
   any process, stops servers whose owner is gone. ``find_orphans()`` lets CI check for leftovers.
"""

from __future__ import annotations

import contextlib
import os

from perflab import processes
from perflab.errors import ServiceUnavailable, UnknownChoice
from perflab.memcached import MemcachedService
from perflab.pgbouncer import PgBouncerService
from perflab.pgbouncer import remove_stray_folders as remove_stray_pgbouncer_folders
from perflab.postgres import POSTGRES_PORT, PostgresClient, PostgresService, postgres_home
from perflab.processes import find_orphans, running_services, stop_recorded
from perflab.redis_server import RedisService
from perflab.replica import ReplicaService, remove_stray_folders
from perflab.service_base import LOCK, START_TIMEOUT, Service, stop_all

__all__ = [
    "POSTGRES_PORT",
    "SERVICES",
    "START_TIMEOUT",
    "MemcachedService",
    "PostgresClient",
    "PostgresService",
    "RedisService",
    "ReplicaService",
    "Service",
    "binary_path",
    "find_orphans",
    "install_commands",
    "install_hint",
    "is_strict",
    "missing_binary_message",
    "postgres_home",
    "reap_orphans",
    "running_services",
    "service_available",
    "start_replica",
    "start_service",
    "stop_all",
    "stop_recorded",
]

SERVICES = ("memcached", "redis", "postgres")
#: Servers perflab.web, perflab.tasks_worker, perflab.edge, perflab.replica and perflab.pgbouncer
#: start (gunicorn, the slow upstream, SMTP, a Celery worker, nginx, PostgreSQL replicas,
#: PgBouncer): started by their own calls on ``lab``, reaped here too.
WEB_SERVICES = ("gunicorn", "upstream", "smtp", "celery", "nginx", "replica", "pgbouncer",
                "thirdparty")
SERVICE_CLASSES: dict[str, type[Service]] = {
    "memcached": MemcachedService,
    "redis": RedisService,
    "postgres": PostgresService,
}
#: A run folder with no record is a start still under way for this long, then a leftover.
STRAY_AFTER = START_TIMEOUT * 4


def is_strict() -> bool:
    """Return True when PERFLAB_STRICT=1, so CI fails where a learner's notebook would go on."""
    return os.environ.get("PERFLAB_STRICT") == "1"


def install_hint(name: str) -> str:
    """Return the install commands for a service's server, one line per package manager."""
    return _installable(name).install_hint()


def install_commands(name: str) -> dict[str, str]:
    """Return the command that installs a server, per installer ("apt", "brew", "conda")."""
    return _installable(name).install_commands()


def binary_path(name: str) -> str | None:
    """Return the path of a server's program, or None when it is not installed."""
    return _installable(name).find_binary()


def missing_binary_message(name: str) -> str:
    """Return the error for a server that is not installed: what is missing, how to install it."""
    return _installable(name).missing_binary_message()


def service_available(name: str) -> bool:
    """Return True when the server for `name` is installed, so a notebook can skip the demo."""
    return _installable(name).available()


def start_service(name: str, *, strict: bool | None = None) -> Service:
    """Start a real server on a Unix socket in this user's private folder.

    ``strict`` (default: ``PERFLAB_STRICT=1``) refuses to start without the kill-on-parent-death
    guard on Linux instead of relying on the reaper alone. Raises ServiceUnavailable when the
    server can't start; the caller decides whether to go on.
    """
    cls = _service_class(name)
    strict = is_strict() if strict is None else strict
    with LOCK:
        if cls.find_binary() is None:
            raise ServiceUnavailable(cls.missing_binary_message())
        reap_orphans()
        existing = cls.already_running()
        if existing is not None:
            return existing
        return cls(strict=strict).start()


def start_replica(
    primary: PostgresClient, *, alias: str = "replica", delay_ms: int = 0,
    strict: bool | None = None,
) -> ReplicaService:
    """Start a streaming replica of ``primary`` (the user's PostgreSQL), caught up with it.

    Raises ServiceUnavailable with the install line when pg_basebackup is missing, and with the
    replica's log when it could not start or catch up.
    """
    strict = is_strict() if strict is None else strict
    with LOCK:
        if ReplicaService.find_binary() is None:
            raise ServiceUnavailable(ReplicaService.missing_binary_message())
        reap_orphans()
        server = ReplicaService(primary, delay_ms=delay_ms, label=alias, strict=strict).start()
    try:
        server.catch_up()
    except ServiceUnavailable:
        server.stop()
        raise
    return server


def reap_orphans() -> list[int]:
    """Stop servers whose owning process died without stopping them; return their pids.

    Also removes the run folders such servers (and starts that never finished) left behind,
    replicas' copies of the cluster among them.
    """
    reaped = processes.reap_orphans((*SERVICES, *WEB_SERVICES), stray_after=STRAY_AFTER)
    with contextlib.suppress(ServiceUnavailable, OSError):
        remove_stray_folders()
    remove_stray_pgbouncer_folders()
    return reaped


def _installable(name: str) -> type[Service]:
    """Return the class of a system server: one start_service() starts, or nginx (an edge)."""
    if name == "nginx":
        from perflab.edge import EdgeCache

        return EdgeCache
    if name == "pgbouncer":
        return PgBouncerService
    return _service_class(name)


def _service_class(name: str) -> type[Service]:
    if name not in SERVICES:
        raise UnknownChoice("service", name, SERVICES)
    return SERVICE_CLASSES[name]
