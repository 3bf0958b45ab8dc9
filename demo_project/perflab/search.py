"""A search engine's index for each database copy: django-haystack pointed at Whoosh files.

haystack reads ``HAYSTACK_CONNECTIONS`` once, when Django starts; a lab runs on several
database copies (``lab.using(scale=...)``), and each copy's index must hold that copy's rows.
``whoosh_index()`` points haystack's default connection at a Whoosh folder kept for the
database Django uses now (made in the lab's private folder, never in the repository), so the
lesson builds and queries an index with haystack's own commands and ``SearchQuerySet``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WHOOSH_ENGINE", "SearchIndexFolder", "use_whoosh", "whoosh_index"]

WHOOSH_ENGINE = "haystack.backends.whoosh_backend.WhooshEngine"

#: database NAME -> the Whoosh folder of that database copy, for this process.
_folders: dict[str, Path] = {}


@dataclass(frozen=True)
class SearchIndexFolder:
    """Hold where a search index's files are, and say how much disk they take."""

    path: Path

    @property
    def bytes(self) -> int:
        """Return the bytes of every file in the folder: what the index costs on disk."""
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())


def use_whoosh(path: Path) -> None:
    """Point haystack's default connection at a Whoosh index in ``path``, from now on.

    haystack builds its connections from the settings when it is imported; this swaps the
    default one's settings and drops the connection it made, so the next search opens ``path``.
    """
    from haystack import connections

    connections.connections_info["default"] = {"ENGINE": WHOOSH_ENGINE, "PATH": str(path)}
    connections.reload("default")


def whoosh_index(make_folder: Callable[[str], Path]) -> SearchIndexFolder:
    """Point haystack at the Whoosh index of the database Django uses now; return its folder.

    The first call for a database copy makes an empty folder with ``make_folder`` (the lab's
    private, removed-at-exit folders); later calls reuse it, so a built index stays built.
    """
    from django.db import connection

    database = str(connection.settings_dict["NAME"])
    folder = _folders.get(database)
    if folder is None or not folder.is_dir():
        folder = make_folder(f"whoosh-{len(_folders) + 1}")
        _folders[database] = folder
    use_whoosh(folder)
    return SearchIndexFolder(folder)

