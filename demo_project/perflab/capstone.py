"""The capstone's lab methods (lesson 25): pages to load, a cache workers share, a chart.

``walk_pages(path)`` follows an API's ``next`` links in this kernel and returns every page's
path: the key mix a load test sends, so most requests are for pages no other request asked
for just before. ``worker_cache()`` starts memcached (``perflab.caches``) for served workers to
share as the ``capstone`` cache alias, and reads its hit and miss counters: a cached step's
figure says how many of its requests the cache answered. ``waterfall(...)`` draws requests per
second and p95 latency step by step, at each scale, against the ceiling.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from perflab import caches, charts
from perflab.errors import PerflabError, ServiceUnavailable
from perflab.load import LoadResult

__all__ = ["CacheCounts", "Capstone", "WorkerCache"]

#: The alias the capstone's cached view reads (``shop.capstone_views.CACHE_ALIAS``).
ALIAS = "capstone"


@dataclass(frozen=True)
class CacheCounts:
    """Gets a cache answered and missed between two readings."""

    hits: int
    misses: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def __sub__(self, earlier: CacheCounts) -> CacheCounts:
        return CacheCounts(self.hits - earlier.hits, self.misses - earlier.misses)


class WorkerCache:
    """A memcached server every served worker reaches as the ``capstone`` cache."""

    def __init__(self, backend: dict[str, Any]) -> None:
        self.backend = backend

    @property
    def settings(self) -> dict[str, Any]:
        """Return the Django settings a served worker needs to use this cache."""
        from django.conf import settings

        return {"CACHES": {"default": settings.CACHES["default"], ALIAS: self.backend}}

    def _client(self) -> Any:
        from pymemcache.client.base import Client

        location = self.backend["LOCATION"]
        return Client(location.removeprefix("unix:"), timeout=5)

    def counts(self) -> CacheCounts:
        """Return memcached's own get hit and miss counters so far."""
        client = self._client()
        try:
            stats = client.stats()
        finally:
            client.close()
        return CacheCounts(int(stats[b"get_hits"]), int(stats[b"get_misses"]))

    def clear(self) -> None:
        """Empty the cache, so the next load starts with every page a miss."""
        client = self._client()
        try:
            client.flush_all()
        finally:
            client.close()


class Capstone:
    """The capstone's lab methods; ``Lab`` provides ``get``."""

    def get(self, target: Any, path: str = "/", **kwargs: Any) -> Any:
        raise NotImplementedError

    def walk_pages(self, path: str, *, limit: int = 10_000) -> list[str]:
        """Return ``path`` and every page after it, following each JSON answer's ``next``.

        ``next`` may be a full URL (DRF builds them) or a path; only the path and query are
        kept, so the pages can be loaded from any server.
        """
        pages = [path]
        while len(pages) <= limit:
            response = self.get(pages[-1])
            if response.status_code != 200:
                raise PerflabError(f"GET {pages[-1]} answered {response.status_code}.")
            following = json.loads(response.content).get("next")
            if not following:
                return pages
            parts = urlsplit(following)
            pages.append(parts.path + (f"?{parts.query}" if parts.query else ""))
        raise PerflabError(f"{path} has more than {limit:,} pages; raise limit= to walk them.")

    def worker_cache(self, *, strict: bool | None = None) -> WorkerCache | None:
        """Start memcached for served workers to share; None, with the install line, without it.

        Its ``settings`` go to ``lab.serve(settings=...)``; ``counts()`` reads its hits and
        misses, ``clear()`` empties it. Without memcached (not strict) the workers' cached view
        falls back on its own process's local memory.
        """
        from perflab.services import is_strict

        try:
            backend = caches.cache_settings("memcached", "capstone")
        except ServiceUnavailable as exc:
            if strict or (strict is None and is_strict()):
                raise
            print(f"⚠️  {exc}")
            return None
        if backend is None:
            return None
        return WorkerCache(backend)

    @staticmethod
    def waterfall(
        steps: Mapping[str, Sequence[LoadResult]],
        ceilings: Mapping[str, LoadResult],
        *,
        title: str,
    ) -> Any:
        """Draw requests per second per server core and p95 latency, step by step, per scale.

        ``steps`` maps a scale to its results in step order (the labels must match across
        scales); ``ceilings`` maps it to the precomputed-bytes result, drawn as a dashed line.
        """
        return charts.waterfall_chart(steps, ceilings, title=title)
