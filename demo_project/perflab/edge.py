"""A CDN's edge on this machine: nginx as a caching reverse proxy in front of a served shop.

``EdgeCache(origin)`` runs nginx, from the system's packages, on a free loopback port with a
configuration of its own in the server's folder. It passes each request to the origin (a
server ``lab.serve`` started) and keeps the answers the origin allows it to keep, as a CDN
does: for as long as the origin's ``Cache-Control`` (or ``Expires``) says, one copy per value
of the headers its ``Vary`` names, nothing the origin marks private or sets a cookie on. The
``X-Cache`` header of each answer says where it came from (``HIT``: the edge's cache; ``MISS``,
``EXPIRED``: the origin; empty: not cacheable).

Its cache, logs and temporary files stay in that folder, which is the learner's alone. It
listens on 127.0.0.1 because the load generator speaks TCP, and serves what the demo shop
serves. Run by root (CI, some containers), its worker runs as root too: nginx's default,
``nobody``, could not write the cache in root's private folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from perflab.errors import PerflabError
from perflab.service_base import Service
from perflab.web import LOOPBACK, TCPService

__all__ = ["EdgeCache"]

#: Debian and Ubuntu install nginx in /usr/sbin, which a normal user's PATH often leaves out.
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/bin")

_CONFIG = """\
# Written by perflab.edge for one run; removed when the server stops.
{user}worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {run}/tmp/body;
    proxy_temp_path {run}/tmp/proxy;
    fastcgi_temp_path {run}/tmp/fastcgi;
    uwsgi_temp_path {run}/tmp/uwsgi;
    scgi_temp_path {run}/tmp/scgi;
    proxy_cache_path {run}/cache levels=1:2 keys_zone=edge:10m max_size=200m inactive=1h
                     use_temp_path=off;
    upstream origin {{
        server {origin};
        keepalive 32;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            {cache}
            add_header X-Cache $upstream_cache_status always;
        }}
    }}
}}
"""


class EdgeCache(TCPService):
    """nginx on 127.0.0.1 in front of ``origin``: a CDN's edge that keeps what it may."""

    name = "nginx"
    binary = "nginx"
    module = "nginx"  # not a Python package: find_binary() looks for the program itself
    packages = ("nginx", "nginx", "nginx")
    searched: ClassVar[str] = "PATH or " + ", ".join(_SBIN)
    ready_path = "/healthz"

    def __init__(
        self, origin: str, *, cache: bool = True, port: int | None = None, strict: bool = False
    ) -> None:
        parts = urlsplit(origin)
        if parts.scheme != "http" or parts.hostname != LOOPBACK or parts.port is None:
            raise PerflabError(
                f"The edge's origin must be a server on this machine, http://{LOOPBACK}:PORT "
                f"(a server lab.serve() started), not {origin!r}."
            )
        super().__init__(port=port, strict=strict)
        self.origin = origin
        self.cache = cache

    @classmethod
    def find_binary(cls) -> str | None:
        """Return nginx's path: on PATH, or where the system's packages put it."""
        found = shutil.which(cls.binary)
        if found:
            return found
        for folder in _SBIN:
            path = Path(folder) / cls.binary
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
        return None

    @classmethod
    def missing_binary_message(cls) -> str:
        """Return the error for a missing nginx: the system's package, not a Python one."""
        return Service.missing_binary_message.__func__(cls)  # type: ignore[attr-defined]

    @property
    def config_path(self) -> Path:
        return self.run_dir / "nginx.conf"

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        what = "caching" if self.cache else "passing on"
        return f"<EdgeCache nginx at {self.url}, {what} {self.origin}, {state}>"

    @property
    def label(self) -> str:
        """Return what a table calls this server: "nginx edge (cached)"."""
        return "nginx edge (cached)" if self.cache else "nginx proxy"

    def pids(self) -> list[int]:
        """Return nginx's master and its worker: what ``lab.load`` counts the CPU of.

        Only nginx's own: the origin's CPU during a load test shows in its own figures.
        """
        import psutil

        if self.pid is None:
            return []
        try:
            return [self.pid, *(child.pid for child in psutil.Process(self.pid).children())]
        except psutil.NoSuchProcess:
            return []

    def _prepare(self) -> None:
        (self.run_dir / "tmp").mkdir(mode=0o700, exist_ok=True)
        user = f"user {pwd.getpwuid(0).pw_name};\n" if os.geteuid() == 0 else ""
        cache = ("proxy_cache edge;\n            proxy_cache_lock on;" if self.cache
                 else "proxy_no_cache 1;")
        self.config_path.write_text(_CONFIG.format(
            user=user, run=self.run_dir, origin=urlsplit(self.origin).netloc,
            listen=self.address, cache=cache,
        ))

    def _command(self) -> list[str]:
        return [self.require_binary(), "-p", str(self.run_dir), "-c", str(self.config_path),
                "-g", "daemon off;"]
