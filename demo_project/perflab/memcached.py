"""Run memcached for a learner: an in-memory cache on a private Unix socket, no TCP."""

from __future__ import annotations

from perflab.accounts import is_root
from perflab.service_base import Service

__all__ = ["MemcachedService"]


class MemcachedService(Service):
    """Run memcached: an in-memory cache that forgets everything when it restarts."""

    name = "memcached"
    binary = "memcached"
    packages = ("memcached", "memcached", "memcached")

    @property
    def location(self) -> str:
        """Return Django's LOCATION for PyMemcacheCache: ``unix:`` and the socket's path."""
        return f"unix:{self.socket_path}"

    def _command(self) -> list[str]:
        # -s turns TCP off; -a 0700 keeps the socket its owner's alone.
        command = [self.require_binary(), "-s", str(self.socket_path), "-a", "0700"]
        command += ["-m", "64"]
        if is_root():
            command += ["-u", "root"]  # memcached won't run as root unless told which user
        return command
