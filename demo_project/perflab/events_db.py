"""Give a kernel its own events database on the learner's PostgreSQL: lesson 11's big tables.

The shop's templates stay as they are: the events tables (``demo_project/events``) live on the
``events`` alias alone (its router), in a database made for this kernel, migrated, filled inside
PostgreSQL with ``generate_series`` (nothing crosses the socket but the statement), and dropped
when the kernel exits, or by the next kernel if this one was killed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from perflab import seed as seeding
from perflab.databases import postgres_settings
from perflab.errors import DiskFull
from perflab.formatting import format_bytes
from perflab.kernel import belongs_to_dead_kernel, drop_at_exit, start_lab_service
from perflab.postgres import postgres_home

if TYPE_CHECKING:
    from perflab.explain import Explain

__all__ = ["ALIAS", "EVENTS_PER_REVIEW", "EventsDatabase", "Partition", "open_events_database"]

#: The database alias the events app is routed to (``events.routers``).
ALIAS = "events"
#: Events per review of the scale: about a million at ``small``, ten million at ``default``.
EVENTS_PER_REVIEW = 50
#: Where the events begin: they span the 365 days of 2025, one partition a month.
FIRST_EVENT = "2025-01-01 00:00:00+00"
#: Bytes both tables take per event, with their indexes, measured (1.7 GB at ``default``).
BYTES_PER_EVENT = 180
#: The two tables, as the lesson names them.
TABLES = ("events_event", "events_partitionedevent")
# Parallel workers and JIT compilation change a plan's shape and time with the machine and the
# table's size; off, a plan reads the same at every scale and on every laptop.
_SESSION = "-c max_parallel_workers_per_gather=0 -c jit=off"
_PREFIX = "perflab_lab_events_"  # also reaped by databases' sweep of perflab_lab_* copies
_SCANS = re.compile(
    r"(?:Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan)(?: Backward)?"
    r"(?: using \S+)? on (\S+)"
)


@dataclass(frozen=True)
class Partition:
    """One partition of a partitioned table: its name and the range of rows it holds."""

    name: str
    bounds: str

    def __str__(self) -> str:
        return f"{self.name:<36} {self.bounds}"


@dataclass
class EventsDatabase:
    """This kernel's events database: its rows, SQL on it, and what a plan or a table holds."""

    server: Any
    dbname: str
    rows: int
    users: int
    psqlextra: bool
    alias: str = ALIAS
    build_seconds: dict[str, float] = field(default_factory=dict)

    def insert_sql(self, table: str) -> str:
        """Return the INSERT that fills ``table`` inside PostgreSQL: one statement, no round trips.

        Row ``i`` of ``rows`` happens at an even step through 2025, for user ``i * 7919 mod
        users``, and is a page view (60%), a search (20%), an add to cart (10%), a checkout or a
        payment (5% each): the same rows every run, at every scale in proportion.
        """
        return (
            f"INSERT INTO {table} (created, user_id, kind)\n"
            f"SELECT timestamptz '{FIRST_EVENT}' + (i - 1) * (interval '365 days' / {self.rows}),\n"
            f"       (i * 7919) % {self.users} + 1,\n"
            "       CASE WHEN i % 20 < 12 THEN 0 WHEN i % 20 < 16 THEN 1\n"
            "            WHEN i % 20 < 18 THEN 2 WHEN i % 20 = 18 THEN 3 ELSE 4 END\n"
            f"FROM generate_series(1::bigint, {self.rows}) AS i"
        )

    def fill(self) -> dict[str, float]:
        """Fill both tables with the same rows, then VACUUM ANALYZE; return seconds per table.

        VACUUM ANALYZE gives the planner its statistics, as autovacuum would soon after a load.
        A disk without room for both tables is refused before the first row is written.
        """
        needed = self.rows * BYTES_PER_EVENT
        folder = postgres_home()
        free = shutil.disk_usage(folder).free
        if free < needed:
            raise DiskFull(
                f"The events tables need about {format_bytes(needed)} on the disk of {folder}, "
                f"which has {format_bytes(free)} free. Free some space, or use a smaller scale "
                "(PERFLAB_SCALE=small: a tenth of the rows)."
            )
        for table in TABLES:
            started = time.perf_counter()
            self.execute(self.insert_sql(table))
            self.execute(f"VACUUM ANALYZE {table}")
            self.build_seconds[table] = time.perf_counter() - started
        return dict(self.build_seconds)

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]] | None:
        """Run ``sql`` on the events database (autocommit); return its rows, if it has any."""
        from django.db import connections

        with connections[self.alias].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else None

    def partitions(self, table: str = "events_partitionedevent") -> list[Partition]:
        """Return ``table``'s partitions in the order of their ranges, a DEFAULT one last."""
        rows = self.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [table],
        ) or []
        found = [Partition(name, bounds) for name, bounds in rows]
        return sorted(found, key=lambda p: (p.bounds == "DEFAULT", p.bounds))

    def size(self, table: str) -> int:
        """Return the bytes ``table`` and its indexes take (all partitions of a partitioned one)."""
        rows = self.execute(
            "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree(%s)",
            [table],
        )
        total = int(rows[0][0]) if rows else 0
        if total == 0:  # not partitioned
            rows = self.execute("SELECT pg_total_relation_size(%s::regclass)", [table])
            total = int(rows[0][0]) if rows else 0
        return total

    @staticmethod
    def tables_read(plan: Explain) -> list[str]:
        """Return the tables (partitions) a PostgreSQL plan reads, in plan order.

        What partition pruning is about, without the plan's costs, timings or scan types,
        which change with the table's size.
        """
        return _SCANS.findall(plan.text)

    def drop(self) -> None:
        """Drop this kernel's events database now (it is dropped at exit anyway)."""
        from django.db import connections

        connections[self.alias].close()
        self.server.drop_database(self.dbname)

    def __repr__(self) -> str:
        how = "django-postgres-extra" if self.psqlextra else "plain SQL partitioning"
        return f"<EventsDatabase {self.dbname} {self.rows:,} rows per table, {how}>"


def events_for(scale: seeding.Scale) -> int:
    """Return how many events a table holds at ``scale``."""
    return scale.reviews * EVENTS_PER_REVIEW


def open_events_database(
    *, name: str, scale: seeding.Scale, strict: bool | None = None
) -> EventsDatabase | None:
    """Make this kernel an empty, migrated events database and point the ``events`` alias at it.

    A missing PostgreSQL raises when strict (``PERFLAB_STRICT=1``); otherwise it prints the
    install line and returns None. Calling it again starts from empty tables.
    """
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    server = start_lab_service("postgres", strict=strict)
    if server is None:
        return None
    from events.models import PSQLEXTRA

    _drop_dead_events_databases(server)
    dbname = re.sub(r"[^a-z0-9_]", "_", f"{_PREFIX}{name[:30]}_{os.getpid()}".lower())
    if ALIAS in connections:
        connections[ALIAS].close()
    server.drop_database(dbname)
    server.create_database(dbname)
    drop_at_exit(server, dbname)
    db = postgres_settings(server, dbname)
    db["OPTIONS"] = {**db.get("OPTIONS", {}), "options": _SESSION}
    if PSQLEXTRA:
        db["ENGINE"] = "psqlextra.backend"
    _set_alias(settings, connections, db)
    call_command("migrate", "events", database=ALIAS, verbosity=0, interactive=False)
    return EventsDatabase(server=server, dbname=dbname, rows=events_for(scale),
                          users=scale.customers, psqlextra=PSQLEXTRA)


def _set_alias(settings: Any, connections: Any, db: dict[str, Any]) -> None:
    """Point the ``events`` alias at ``db``, leaving every other alias as it is."""
    settings.DATABASES = {**settings.DATABASES, ALIAS: db}
    connections._settings = None
    connections.__dict__.pop("settings", None)
    with contextlib.suppress(AttributeError):
        delattr(connections._connections, ALIAS)


def _drop_dead_events_databases(server: Any) -> None:
    """Drop events databases left by kernels that died: the server's data outlives them."""
    with server.connect("postgres") as conn:
        names = [row[0] for row in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{_PREFIX}%"]
        )]
    for dbname in names:
        if belongs_to_dead_kernel(dbname, "_"):
            server.drop_database(dbname)
