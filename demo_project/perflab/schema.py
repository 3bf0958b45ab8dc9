"""The indexes a lesson added or dropped, so a comparison can put them back while it times.

``lab.add_index`` and ``lab.drop_index`` go through here. A measurement notes which of those
indexes existed when it was made (a ``Schema``); ``compare(..., interleave=True)`` then times
"before the index" and "after the index" round by round, recreating or dropping the lesson's
indexes between rounds (untimed), so both sides see the same moments of a busy machine.
Only what a lab changed is tracked: the migrations' own indexes never move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Schema", "add_index", "current", "drop_index", "forget", "restore"]

#: database NAME -> {index name: (model, index)} for the indexes a lab added and still has.
_added: dict[str, dict[str, tuple[Any, Any]]] = {}
#: Every index a lab has added, by database and name, so restore() can make it again.
_known: dict[tuple[str, str], tuple[Any, Any]] = {}


@dataclass(frozen=True)
class Schema:
    """Which database a measurement ran on, and which lab-added indexes it had."""

    database: str
    indexes: frozenset[str]


def _database(using: str = "default") -> str:
    from django.db import connections

    return str(connections[using].settings_dict["NAME"])


def current(using: str = "default") -> Schema:
    """Return the database Django uses now and the lab-added indexes it has."""
    database = _database(using)
    return Schema(database, frozenset(_added.get(database, {})))


def add_index(model: Any, index: Any, using: str = "default") -> None:
    """Create ``index`` on ``model``'s table, as an AddIndex migration does, and remember it."""
    from django.db import connections

    with connections[using].schema_editor() as editor:
        editor.add_index(model, index)
    database = _database(using)
    _added.setdefault(database, {})[index.name] = (model, index)
    _known[database, index.name] = (model, index)


def drop_index(model: Any, index: Any, using: str = "default") -> None:
    """Remove an index, as a RemoveIndex migration does."""
    from django.db import connections

    with connections[using].schema_editor() as editor:
        editor.remove_index(model, index)
    database = _database(using)
    _added.get(database, {}).pop(index.name, None)
    _known.setdefault((database, index.name), (model, index))


def restore(schema: Schema, using: str = "default") -> None:
    """Add and drop lab indexes until the database has the ones ``schema`` had."""
    now = current(using)
    if now.database != schema.database:
        raise ValueError("restore() on another database than the one the schema was taken on")
    for name in sorted(now.indexes - schema.indexes):
        drop_index(*_added[now.database][name], using=using)
    for name in sorted(schema.indexes - now.indexes):
        add_index(*_known[schema.database, name], using=using)


def forget(database: str) -> None:
    """Drop what is remembered of ``database``: it was copied afresh from its template."""
    _added.pop(database, None)
    for key in [key for key in _known if key[0] == database]:
        del _known[key]
