"""Watch and bound the server connections to a lab's PostgreSQL database; pool them with PgBouncer.

``Pooling`` is the part of ``perflab.lab.Lab`` a lesson about database connections uses:
``app_database`` (the lab's database as an ordinary role, which limits apply to),
``watch_connections`` (what ``pg_stat_activity`` and ``pg_stat_database`` say while a block
runs: connections open at once, connections opened), ``connection_limit`` (a per-database
``CONNECTION LIMIT`` on the lab's own copy, reset afterwards: the learner's server is shared by
every open lesson, so its ``max_connections`` is not ours to lower) and ``pgbouncer``
(``perflab.pgbouncer``), with ``add_database`` to reach it from the kernel too.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from perflab import kernel, services
from perflab.errors import PerflabError, ServiceUnavailable
from perflab.pgbouncer import PgBouncerService, pgbouncer_settings
from perflab.postgres import APP_ROLE, PostgresClient, refresh_access_rules
from perflab.replica import add_alias

__all__ = ["ConnectionWatch", "Pooling", "ensure_app_role"]

#: Seconds between two looks at pg_stat_activity while a block runs.
SAMPLE_INTERVAL = 0.02
_NO_ROLE_MAPPING = (
    "Your PostgreSQL was started by an older perflab and, even with its access rules reloaded, "
    f"does not let you log in as the role {APP_ROLE}. Shut down the other notebooks' kernels (or "
    "run `python -m perflab services stop-all`) so that it restarts, then run the cell again."
)


@dataclass
class ConnectionWatch:
    """Count one database's server connections while a block runs.

    ``peak``: most client connections open at once (sampled every ``SAMPLE_INTERVAL`` s);
    ``opened``: sessions the server started for that database meanwhile (``pg_stat_database``,
    complete once the connections have closed: a backend reports its session at the latest
    when it exits).
    """

    server: PostgresClient
    dbname: str
    peak: int = 0
    samples: list[int] = field(default_factory=list)
    opened: int = 0
    _sessions_before: int = 0
    _open_before: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def open_now(self) -> int:
        """Return the client connections open to the database right now."""
        with self.server.connect() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = %s AND backend_type = 'client backend'", (self.dbname,)
            ).fetchone()
        return int(row[0]) if row else 0

    def sessions(self) -> int:
        """Return the sessions the server has started for the database so far."""
        with self.server.connect() as conn:
            row = conn.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = %s", (self.dbname,)
            ).fetchone()
        return int(row[0] or 0) if row else 0

    def start(self) -> ConnectionWatch:
        """Note the sessions so far and start sampling in a thread."""
        self._sessions_before = self.sessions()
        self._open_before = self.open_now()
        self._thread = threading.Thread(target=self._sample, name="perflab-connections",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, settle_s: float = 2.0) -> None:
        """Stop sampling; count the sessions opened, once the block's connections have closed.

        Waits up to ``settle_s`` for the database to have no more client connections than
        before the block (this kernel's own, say), so that every session has been reported:
        stop the served workers inside the block for that.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        deadline = time.monotonic() + settle_s
        while self.open_now() > self._open_before and time.monotonic() < deadline:
            time.sleep(0.05)
        self.opened = self.sessions() - self._sessions_before

    def _sample(self) -> None:
        with self.server.connect() as conn:
            while True:  # one sample at least, however short the block
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = %s AND backend_type = 'client backend'", (self.dbname,)
                ).fetchone()
                count = int(row[0]) if row else 0
                self.samples.append(count)
                self.peak = max(self.peak, count)
                if self._stop.wait(SAMPLE_INTERVAL):
                    return

    def __repr__(self) -> str:
        return f"<ConnectionWatch {self.dbname}: peak {self.peak} open, {self.opened} opened>"


def ensure_app_role(server: PostgresClient, dbname: str) -> None:
    """Create the ordinary role ``APP_ROLE`` if need be and let it use ``dbname``'s tables.

    Roles are the server's, shared by every lab; the grants are the lab copy's own.
    """
    import psycopg
    from psycopg import sql

    stale = False
    with server.connect() as conn:
        if _ident_mappings_readable(conn):  # PostgreSQL 15+ shows pg_ident.conf
            mapped = conn.execute(
                "SELECT count(*) FROM pg_ident_file_mappings WHERE pg_username = %s",
                (APP_ROLE,),
            ).fetchone()
            stale = not mapped or not mapped[0]
        with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
                         .format(sql.Identifier(APP_ROLE)))
    if stale:  # a server started by an older perflab: give it today's rules, no restart
        refresh_access_rules(server)
        _wait_for_login(_AsRole(server, APP_ROLE), "postgres")
    role = sql.Identifier(APP_ROLE)
    with server.connect(dbname) as conn:
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
            sql.Identifier(dbname), role))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "
                             "public TO {}").format(role))
        conn.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}")
                     .format(role))


def _wait_for_login(client: PostgresClient, dbname: str, timeout_s: float = 5.0) -> None:
    """Wait until ``client`` may log in: the server reads reloaded rules a moment later."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with client.connect(dbname):
                return
        except psycopg.OperationalError as error:
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"{_NO_ROLE_MAPPING}\n({error})") from error
            time.sleep(0.05)


def _ident_mappings_readable(conn: Any) -> bool:
    row = conn.execute("SELECT to_regclass('pg_catalog.pg_ident_file_mappings')").fetchone()
    return bool(row and row[0])


class Pooling:
    """The lab's connection methods; ``Lab`` provides ``database`` and ``database_settings``."""

    database: str
    database_settings: dict[str, Any]

    def app_database(self) -> dict[str, Any]:
        """Return DATABASES' entry for this lab's database as an ordinary role, not a superuser.

        A database's ``CONNECTION LIMIT`` (and a role's) does not apply to superusers, as
        ``postgres`` is; a real application logs in as a role like this one.
        """
        server, dbname = self._lab_postgres()
        ensure_app_role(server, dbname)
        return {**self.database_settings, "USER": APP_ROLE}

    @contextlib.contextmanager
    def watch_connections(self) -> Iterator[ConnectionWatch]:
        """Count this lab database's server connections during the block: ``.peak``, ``.opened``."""
        server, dbname = self._lab_postgres()
        watch = ConnectionWatch(server, dbname).start()
        try:
            yield watch
        finally:
            watch.stop()

    @contextlib.contextmanager
    def connection_limit(self, limit: int) -> Iterator[int]:
        """Allow at most ``limit`` connections to this lab's database during the block.

        ``ALTER DATABASE ... CONNECTION LIMIT`` on the lab's own copy (the server is shared by
        every open lesson), removed afterwards even if the block fails. This kernel's own
        connection is closed first, so the limit is all the block's. Superusers are exempt:
        connect as ``app_database()``'s role.
        """
        from django.db import connections
        from psycopg import sql

        if limit < 1:
            raise PerflabError(f"The limit must be 1 or more (got {limit}).")
        server, dbname = self._lab_postgres()
        connections.close_all()
        alter = sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}")
        with server.connect() as conn:
            conn.execute(alter.format(sql.Identifier(dbname), sql.Literal(int(limit))))
        try:
            yield limit
        finally:
            with server.connect() as conn:
                conn.execute(alter.format(sql.Identifier(dbname), sql.Literal(-1)))

    def pgbouncer(
        self, *, pool_mode: str = "transaction", pool_size: int = 5, strict: bool | None = None
    ) -> PgBouncerService | None:
        """Start PgBouncer in front of this lab's PostgreSQL; it stops with the kernel.

        It logs in to the server as ``app_database()``'s role, with at most ``pool_size``
        connections per database, shared by every client in ``pool_mode``. The returned
        service's ``database`` is Django's DATABASES entry through it (server-side cursors off
        in transaction mode) and ``settings`` is ``{"DATABASES": {"default": database}}`` for
        ``lab.serve(settings=...)``. None with the install line when PgBouncer is missing (an
        error when strict).
        """
        strict = services.is_strict() if strict is None else strict
        try:
            if not PgBouncerService.available():
                raise ServiceUnavailable(PgBouncerService.missing_binary_message())
            server, dbname = self._lab_postgres()
            ensure_app_role(server, dbname)
            upstream = _AsRole(server, APP_ROLE)
            services.reap_orphans()
            bouncer = PgBouncerService(upstream, pool_mode=pool_mode, pool_size=pool_size,
                                       strict=strict).start()
        except ServiceUnavailable as exc:
            if strict:
                raise
            print(f"⚠️  {exc}")
            return None
        bouncer.database = pgbouncer_settings(bouncer, self.database_settings)
        bouncer.settings = {"DATABASES": {"default": bouncer.database}}
        return bouncer

    @staticmethod
    def add_database(alias: str, entry: dict[str, Any]) -> None:
        """Add ``alias`` to this kernel's DATABASES (``.using(alias)``), keeping the others open.

        For a second way to the same database, such as through ``pgbouncer()`` (its
        ``database``), beside ``default``.
        """
        if alias == "default":
            raise PerflabError("add_database() adds an alias beside 'default'; pick another name.")
        add_alias(alias, entry)

    def _lab_postgres(self) -> tuple[PostgresClient, str]:
        if self.database != "postgres":
            raise PerflabError("This needs a lab on PostgreSQL: setup(database='postgres') or "
                               "`with lab.using('postgres') as pg:`.")
        server = kernel.start_lab_service("postgres", strict=True)
        return server, str(self.database_settings["NAME"])


class _AsRole(PostgresClient):
    """The same server, logged in to as another role (PgBouncer's ``user=``)."""

    def __init__(self, server: PostgresClient, role: str) -> None:
        self.host, self.port, self.user = server.host, server.port, role
