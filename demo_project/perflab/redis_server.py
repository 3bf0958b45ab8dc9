"""Run Redis for a learner: a cache with persistence off, on a private Unix socket, no TCP.

(Named ``redis_server`` so that it never shadows the ``redis`` client package.)
"""

from __future__ import annotations

from perflab.service_base import Service

__all__ = ["RedisService"]


class RedisService(Service):
    """Run Redis with persistence off, as a cache for Django's RedisCache."""

    name = "redis"
    binary = "redis-server"
    packages = ("redis-server", "redis", "redis-server")

    @property
    def url(self) -> str:
        """Return the unix:// URL for database 0 (redis-py and Django's RedisCache take it)."""
        return f"unix://{self.socket_path}?db=0"

    def _command(self) -> list[str]:
        return [
            self.require_binary(),
            # --port 0: no TCP at all; the socket is its owner's alone.
            *("--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"),
            *("--save", "", "--appendonly", "no", "--dir", str(self.run_dir)),
        ]
