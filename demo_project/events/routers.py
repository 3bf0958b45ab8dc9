"""Keep the events tables on their own database alias, and nothing else there.

The shop's templates (SQLite and PostgreSQL) never get the events tables, and the events
database never gets the shop's: a lab adds the ``events`` alias when a lesson asks for it.
"""

from __future__ import annotations

from typing import Any

ALIAS = "events"
APP = "events"


class EventsRouter:
    """Send the events app's reads, writes and migrations to ``ALIAS``, and only those."""

    def db_for_read(self, model: type, **hints: Any) -> str | None:
        return ALIAS if model._meta.app_label == APP else None

    def db_for_write(self, model: type, **hints: Any) -> str | None:
        return ALIAS if model._meta.app_label == APP else None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if app_label == APP:
            return db == ALIAS
        return False if db == ALIAS else None
