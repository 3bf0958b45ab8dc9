"""How much disk a table and its indexes take, per vendor: an index is never free.

SQLite answers through its ``dbstat`` table (pages per table or index), PostgreSQL through
``pg_relation_size`` and ``pg_indexes_size``. Both count whole pages, as the disk does.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from perflab.errors import PerflabError
from perflab.formatting import format_bytes

__all__ = ["TableStorage", "database_size", "table_storage"]


@dataclass(frozen=True)
class TableStorage:
    """Hold the bytes a table's rows take and the bytes each of its indexes takes."""

    table: str
    table_bytes: int
    index_bytes: dict[str, int] = field(default_factory=dict)

    @property
    def indexes_bytes(self) -> int:
        """Return the bytes all the table's indexes take together."""
        return sum(self.index_bytes.values())

    @property
    def total_bytes(self) -> int:
        return self.table_bytes + self.indexes_bytes

    def __str__(self) -> str:
        lines = [f"{self.table}: rows {format_bytes(self.table_bytes)}, "
                 f"{len(self.index_bytes)} indexes {format_bytes(self.indexes_bytes)}"]
        lines += [f"  {name}: {format_bytes(size)}" for name, size in self.index_bytes.items()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        rows = [f"<tr><td>rows of <code>{e(self.table)}</code></td>"
                f"<td>{format_bytes(self.table_bytes)}</td></tr>"]
        rows += [f"<tr><td>index <code>{e(name)}</code></td><td>{format_bytes(size)}</td></tr>"
                 for name, size in self.index_bytes.items()]
        rows.append(f"<tr><th>total</th><th>{format_bytes(self.total_bytes)}</th></tr>")
        return f"<table class='perflab-storage'>{''.join(rows)}</table>"


def table_storage(table: str, *, using: str = "default") -> TableStorage:
    """Return the disk space of ``table``'s rows and of each of its indexes."""
    from django.db import connections

    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            return _sqlite_table_storage(cursor, table)
        if connection.vendor == "postgresql":
            return _postgres_table_storage(cursor, table)
    raise PerflabError(f"table_storage() reads SQLite and PostgreSQL, not {connection.vendor}.")


def database_size(*, using: str = "default") -> int:
    """Return the bytes the whole database takes (free pages left by deletes excluded)."""
    from django.db import connections

    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT (page_count - freelist_count) * page_size "
                "FROM pragma_page_count, pragma_freelist_count, pragma_page_size"
            )
        elif connection.vendor == "postgresql":
            cursor.execute("SELECT pg_database_size(current_database())")
        else:
            raise PerflabError(
                f"database_size() reads SQLite and PostgreSQL, not {connection.vendor}."
            )
        return int(cursor.fetchone()[0])


def _sqlite_table_storage(cursor: Any, table: str) -> TableStorage:
    cursor.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = %s ORDER BY name",
        [table],
    )
    indexes = [row[0] for row in cursor.fetchall()]
    names = [table, *indexes]
    marks = ", ".join(["%s"] * len(names))
    try:
        cursor.execute(
            f"SELECT name, SUM(pgsize) FROM dbstat WHERE name IN ({marks}) GROUP BY name", names
        )
    except Exception as exc:  # sqlite3.OperationalError: built without SQLITE_ENABLE_DBSTAT_VTAB
        raise PerflabError(
            "This Python's SQLite has no dbstat table, so it cannot size one table. "
            "lab.database_size() still works."
        ) from exc
    sizes = dict(cursor.fetchall())
    if table not in sizes:
        raise PerflabError(f"No table named {table!r} in this database.")
    return TableStorage(table, int(sizes[table]), {i: int(sizes.get(i, 0)) for i in indexes})


def _postgres_table_storage(cursor: Any, table: str) -> TableStorage:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
    if not cursor.fetchone()[0]:
        raise PerflabError(f"No table named {table!r} in this database.")
    # pg_table_size includes TOAST and the free space map: what the rows cost on disk.
    cursor.execute("SELECT pg_table_size(%s::regclass)", [table])
    table_bytes = int(cursor.fetchone()[0])
    cursor.execute(
        "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
        "WHERE indrelid = %s::regclass ORDER BY 1",
        [table],
    )
    return TableStorage(table, table_bytes, {n: int(s) for n, s in cursor.fetchall()})
