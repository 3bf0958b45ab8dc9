"""Write generated rows into a migrated database the fast way, as a restore tool does.

Rows go through the driver's bulk path: ``executemany`` on SQLite, ``COPY`` on PostgreSQL
(psycopg 3's ``cursor.copy()``); going through ``bulk_create`` would build a model instance per
row. Like ``pg_restore``, a load drops the tables' secondary indexes (and, on PostgreSQL, their
foreign keys) first and builds them again at the end: one sort per index instead of millions of
random B-tree inserts. Everything happens in one transaction, so a failed load leaves nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .seed import Scale, TableRows, generate

__all__ = [
    "bulk_load",
    "fill_review_counters",
    "seed_database",
    "template_build",
    "write_rows",
]


def _ahead(batches: Iterator[list[Any]]) -> Iterator[list[Any]]:
    """Generate the next batches in a thread while the caller writes this one.

    numpy and the database driver release the GIL for much of their work, so on two cores
    making rows and writing them overlap. Exceptions in the thread are raised here.
    """
    done = object()
    ready: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                ready.put(batch)
            ready.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put(exc)

    thread = threading.Thread(target=produce, name="perflab-seed", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:  # unblock a producer waiting on a full queue
                ready.get_nowait()
        thread.join()


def write_rows(
    connection: Any,
    table: TableRows,
    *,
    progress: Callable[[int], None] | None = None,
    ahead: bool = True,
) -> int:
    """Write one table's rows through the driver's bulk path; return the number written.

    ``connection`` is a Django connection; its raw DB-API connection does the work so no model
    instances are built. With ``ahead``, the next batch is generated while this one is written.
    """
    connection.ensure_connection()
    raw = connection.connection
    columns = ", ".join(connection.ops.quote_name(c) for c in table.columns)
    name = connection.ops.quote_name(table.table)
    batches = _ahead(table.batches()) if ahead else table.batches()
    written = 0
    if connection.vendor == "postgresql":
        with raw.cursor() as cursor, cursor.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
            for batch in batches:
                for row in batch:
                    copy.write_row(row)
                written += len(batch)
                if progress:
                    progress(len(batch))
    else:
        # Many rows per INSERT: SQLite's per-statement work (the AUTOINCREMENT counter is
        # written at the end of each one) is paid once per 100-odd rows, not once per row.
        one = "(" + ", ".join("?" for _ in table.columns) + ")"
        per = max(1, 999 // len(table.columns))  # the oldest SQLite's limit on parameters
        many = f"INSERT INTO {name} ({columns}) VALUES " + ", ".join([one] * per)
        flat = itertools.chain.from_iterable
        cursor = raw.cursor()
        try:
            for batch in batches:
                whole = len(batch) - len(batch) % per
                cursor.executemany(many, [list(flat(batch[i:i + per]))
                                          for i in range(0, whole, per)])
                cursor.executemany(f"INSERT INTO {name} ({columns}) VALUES {one}", batch[whole:])
                written += len(batch)
                if progress:
                    progress(len(batch))
        finally:
            cursor.close()
    return written


def _reset_sequences(connection: Any, tables: Sequence[str]) -> None:
    # Ids were written explicitly; PostgreSQL's sequences must move past them or the next
    # ORM insert collides. SQLite's AUTOINCREMENT counter follows explicit ids by itself.
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {connection.ops.quote_name(table)}), 1))",
                [table],
            )


def _deferred_sqlite(cursor: Any, tables: Sequence[str]) -> list[str]:
    # Secondary indexes (those with SQL; UNIQUE columns' own indexes have none): drop them and
    # return the statements that make them again.
    marks = ", ".join("?" for _ in tables)
    found = cursor.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        f"AND tbl_name IN ({marks}) ORDER BY name", list(tables),
    ).fetchall()
    for name, _ in found:
        cursor.execute(f'DROP INDEX "{name}"')
    return [sql for _, sql in found]


def _deferred_postgres(cursor: Any, tables: Sequence[str]) -> list[str]:
    # Plain indexes (not those behind a primary key or unique constraint), then foreign keys:
    # re-adding a foreign key checks every row against its parent in one join.
    cursor.execute(
        "SELECT 'DROP INDEX ' || i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
        "FROM pg_index i WHERE i.indrelid = ANY(%s::regclass[]) AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY 1",
        [list(tables)],
    )
    statements = cursor.fetchall()
    cursor.execute(
        "SELECT format('ALTER TABLE %%s DROP CONSTRAINT %%I', conrelid::regclass, conname), "
        "format('ALTER TABLE %%s ADD CONSTRAINT %%I %%s', conrelid::regclass, conname, "
        "pg_get_constraintdef(oid)) FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid = ANY(%s::regclass[]) ORDER BY conname",
        [list(tables)],
    )
    statements += cursor.fetchall()
    for drop, _ in statements:
        cursor.execute(drop)
    return [create for _, create in statements]


def _check_foreign_keys_sqlite(raw: Any, tables: Sequence[str]) -> None:
    """Raise if a row of ``tables`` points at no parent row.

    Ids here are 1..n, so when a parent's ids have no gap, a column whose smallest and largest
    values lie within them is proven from its (freshly built) index: two lookups instead of
    one per row. Anything else is checked row by row with ``PRAGMA foreign_key_check``.
    """
    to_check = [] if tables else [""]
    for table in tables:
        for fk in raw.execute(f'PRAGMA foreign_key_list("{table}")').fetchall():
            parent, column, key = fk[2], fk[3], fk[4] or "id"
            low, high = raw.execute(
                f'SELECT MIN("{column}"), MAX("{column}") FROM "{table}"').fetchone()
            if low is None:
                continue  # no rows, or only NULLs
            first, last, count = raw.execute(
                f'SELECT MIN("{key}"), MAX("{key}"), COUNT(*) FROM "{parent}"').fetchone()
            if count and last - first + 1 == count and first <= low and high <= last:
                continue
            to_check.append(table)
    for table in dict.fromkeys(to_check):
        pragma = f'PRAGMA foreign_key_check("{table}")' if table else "PRAGMA foreign_key_check"
        broken = raw.execute(pragma).fetchall()
        if broken:
            raise RuntimeError(f"Seeded rows break foreign keys: {broken[:5]}")


@contextlib.contextmanager
def bulk_load(
    connection: Any, tables: Sequence[str] = (), *, then: Callable[[], None] | None = None
) -> Iterator[None]:
    """Wrap bulk writes into ``tables`` in one transaction, their indexes built at the end.

    The generated rows are consistent by construction, so checking each insert against its
    parent only costs time: SQLite's per-row foreign key checks are paused, PostgreSQL's
    foreign keys dropped; at the end they are checked once for all rows (on SQLite, every
    table when ``tables`` is empty). ``then`` runs once the indexes are back, before the
    checks and the commit.
    """
    from django.db import transaction

    sqlite = connection.vendor == "sqlite"
    connection.ensure_connection()
    if sqlite:
        connection.connection.execute("PRAGMA foreign_keys = OFF")  # outside any transaction
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            if sqlite:
                rebuild = _deferred_sqlite(cursor, tables) if tables else []
            else:
                cursor.execute("SET LOCAL maintenance_work_mem = '128MB'")
                rebuild = _deferred_postgres(cursor, tables) if tables else []
            yield
            for statement in rebuild:
                cursor.execute(statement)
            if then is not None:
                then()
            if sqlite:
                _check_foreign_keys_sqlite(connection.connection, tables)
    finally:
        if sqlite:
            connection.connection.execute("PRAGMA foreign_keys = ON")


@contextlib.contextmanager
def template_build(connection: Any) -> Iterator[None]:
    """Write a SQLite template without a rollback journal or fsyncs, as a one-off build may.

    Safe only because a template exists once whole: it is written under a temporary name and
    renamed at the end, and a build that fails or is killed is deleted, never used.
    """
    if connection.vendor != "sqlite":
        yield
        return
    connection.ensure_connection()
    raw = connection.connection
    raw.execute("PRAGMA journal_mode = OFF")
    raw.execute("PRAGMA synchronous = OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA synchronous = FULL")
        raw.execute("PRAGMA journal_mode = DELETE")


def fill_review_counters(connection: Any) -> None:
    """Set each product's stored review count and rating sum from the reviews table.

    The sums come from one grouped pass over the reviews, into a temporary table; then every
    product is updated in table order, looking its sums up there. That is the order a plain
    correlated UPDATE goes in, so on PostgreSQL (which writes each updated row anew, at the
    end of the table) the products end up where they always did, for the planner too.
    """
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE perflab_review_sums (product_id bigint PRIMARY KEY, "
                       "n integer NOT NULL, total integer NOT NULL)")
        cursor.execute("INSERT INTO perflab_review_sums SELECT product_id, COUNT(*), SUM(rating) "
                       "FROM shop_review GROUP BY product_id")
        sums = "FROM perflab_review_sums s WHERE s.product_id = shop_product.id), 0)"
        cursor.execute(f"UPDATE shop_product SET num_reviews = COALESCE((SELECT s.n {sums}, "
                       f"rating_sum = COALESCE((SELECT s.total {sums}")
        cursor.execute("DROP TABLE perflab_review_sums")


def seed_database(
    connection: Any,
    scale: Scale,
    *,
    seed: int = 42,
    progress: bool | None = None,
    admin_password: str | None = None,
) -> dict[str, int]:
    """Fill an empty, migrated database with ``scale``'s rows; return rows written per table.

    Runs in one transaction so a crash leaves no half-seeded template behind.
    """
    tables = generate(scale, seed=seed, admin_password=admin_password, vendor=connection.vendor)
    total = sum(t.count for t in tables)
    show = progress if progress is not None else total > 100_000
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit=" rows", desc=f"Seeding {scale.name}", unit_scale=True)
    counts: dict[str, int] = {}
    names = [t.table for t in tables]
    sqlite = connection.vendor == "sqlite"
    try:
        # PostgreSQL updates the products once their indexes exist, as it always did: the
        # indexes' sizes (which the planner weighs) come out as before.
        with bulk_load(connection, names,
                       then=None if sqlite else lambda: fill_review_counters(connection)):
            for table in tables:
                counts[table.table] = write_rows(
                    connection, table, progress=bar.update if bar else None
                )
            _reset_sequences(connection, names)
            if sqlite:  # before the review index exists: SQLite would read reviews through it
                fill_review_counters(connection)
    finally:
        if bar is not None:
            bar.close()
    return counts
