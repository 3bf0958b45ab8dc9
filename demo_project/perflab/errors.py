"""Errors a learner can act on: each message says what went wrong and what to do next."""

from __future__ import annotations

__all__ = [
    "DiskFull",
    "PerflabError",
    "PortInUse",
    "ServiceUnavailable",
    "StaleSchema",
    "UnknownChoice",
]


class PerflabError(Exception):
    """Base for every error perflab raises on purpose."""


class UnknownChoice(PerflabError, ValueError):
    """Raise for a name outside a fixed set (scale, service, database), listing the valid ones."""

    def __init__(
        self,
        kind: str,
        value: object,
        choices: list[str] | tuple[str, ...],
        *,
        source: str | None = None,
    ) -> None:
        self.kind, self.value, self.choices = kind, value, tuple(choices)
        where = f" (from {source})" if source else ""
        super().__init__(
            f"Unknown {kind} {value!r}{where}. Choose one of: {', '.join(map(repr, self.choices))}."
        )


class ServiceUnavailable(PerflabError, RuntimeError):
    """Raise when a server binary is missing or the server would not start."""


class PortInUse(PerflabError, OSError):
    """Raise when a port asked for by number is already taken by another process."""


class StaleSchema(PerflabError, RuntimeError):
    """Raise when the models and the migrations (or a database built from them) disagree."""


class DiskFull(PerflabError, OSError):
    """Raise when a database copy or build ran out of disk; the partial file is already gone."""
