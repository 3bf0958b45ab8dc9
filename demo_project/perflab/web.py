"""Serve an application with real worker processes, and a slow upstream for I/O-bound pages.

``WebServer`` runs gunicorn (sync or gthread workers, or uvicorn workers for ASGI through the
``uvicorn-worker`` package) on a free loopback port; ``SlowUpstream`` runs a small HTTP server
that answers after a set delay, the third-party API an I/O-bound page waits for. Both derive
from ``perflab.service_base.Service``: recorded, stopped at exit, launched with a parent-death
signal, reaped by the next start after a killed kernel. gunicorn's workers are its own
children and leave when their master does.

They listen on 127.0.0.1, not on a socket in the learner's folder: the load generator speaks
TCP. On a shared host every local user can reach such a port, so they serve demo pages only:
the shop runs with DEBUG off, a random secret key and no debug toolbar, and its admin needs a
password its lab copy does not have.

The served process learns what to serve from its environment (``perflab.served``): the
application's import path and the settings to override, JSON, among them the lab's own
database. Several SQLite workers that write would meet "database is locked": a served SQLite
database runs in WAL mode with a busy timeout and immediate transactions.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import secrets
import socket
from pathlib import Path
from typing import Any, ClassVar

from mirakuru import TCPExecutor

from perflab.errors import PerflabError, PortInUse, ServiceUnavailable, UnknownChoice
from perflab.paths import REPO_ROOT
from perflab.service_base import InThisPython, ReadyCheck, Service

__all__ = [
    "SHOP_ASGI",
    "SHOP_WSGI",
    "WORKER_CLASSES",
    "DelayedService",
    "SlowUpstream",
    "TCPService",
    "WebServer",
    "free_port",
]

SHOP_WSGI = "config.wsgi:application"
SHOP_ASGI = "config.asgi:application"
#: The worker classes a lesson names, and what gunicorn calls them.
WORKER_CLASSES = {
    "sync": "sync",
    "gthread": "gthread",
    "uvicorn": "uvicorn_worker.UvicornWorker",
}
LOOPBACK = "127.0.0.1"
_PIP_HINT = (
    "It comes with the workshop's pinned packages: .venv/bin/pip install -r requirements.txt "
    "(or `make setup`), then restart the kernel."
)


def free_port() -> int:
    """Return a loopback port no one listens on now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _check_port(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            raise PortInUse(
                f"Port {port} on {LOOPBACK} is already in use. Leave port= out and perflab "
                "picks a free one."
            ) from None


class TCPService(InThisPython, Service):
    """A server on a loopback port, up once ``_ready()`` gets an HTTP answer from it."""

    module: ClassVar[str]  # what `python -m` runs (the program is this Python's)
    ready_path: str = "/"

    def __init__(self, *, port: int | None = None, strict: bool = False) -> None:
        super().__init__(strict=strict)
        if port is not None:
            _check_port(port)
        self.port = port or free_port()

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def socket_path(self) -> Path:
        raise PerflabError(f"{self.name} listens on {self.url}, not on a Unix socket.")

    def _ready(self) -> bool:
        try:
            connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=5)
            connection.request("GET", self.ready_path)
            status = connection.getresponse().status
            connection.close()
        except OSError:
            return False
        return status < 500

    def _make_executor(self, command: list[str], **kwargs: Any) -> TCPExecutor:
        return _TCPServerExecutor(command, host=LOOPBACK, port=self.port, **kwargs)

    def _launch(self) -> Any:
        try:
            return super()._launch()
        except ServiceUnavailable as exc:
            if "already answering" in str(exc):
                raise PortInUse(
                    f"Port {self.port} on {LOOPBACK} was taken before {self.name} could bind it; "
                    "run the cell again for another free port."
                ) from exc
            raise


class WebServer(TCPService):
    """Serve an application with gunicorn: ``workers`` processes of ``worker_class``."""

    name = "gunicorn"
    binary = "gunicorn"
    module = "gunicorn"
    packages = ("gunicorn", "gunicorn", "gunicorn")

    def __init__(
        self,
        app: str = SHOP_WSGI,
        *,
        workers: int = 1,
        worker_class: str = "sync",
        threads: int = 1,
        settings: dict[str, Any] | None = None,
        ready_path: str = "/healthz",
        port: int | None = None,
        strict: bool = False,
    ) -> None:
        if worker_class not in WORKER_CLASSES:
            raise UnknownChoice("worker class", worker_class, tuple(WORKER_CLASSES))
        if workers < 1 or threads < 1:
            raise PerflabError(f"workers and threads must be 1 or more (got {workers}, {threads}).")
        if ":" not in app:
            raise PerflabError(f"app must be 'module:name', like {SHOP_WSGI!r} (got {app!r}).")
        if worker_class == "uvicorn" and importlib.util.find_spec("uvicorn_worker") is None:
            raise ServiceUnavailable(
                f"uvicorn workers need the uvicorn-worker package. {_PIP_HINT}"
            )
        super().__init__(port=port, strict=strict)
        self.app = app
        self.workers = workers
        self.worker_class = worker_class
        self.threads = threads
        self.settings = dict(settings or {})
        self.ready_path = ready_path

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<WebServer {self.app} at {self.url}: {self.label}, {state}>"

    @property
    def label(self) -> str:
        """Return what a chart or a table calls this server: "2 sync workers"."""
        threads = f" x {self.threads} threads" if self.threads > 1 else ""
        plural = "s" if self.workers != 1 else ""
        return f"{self.workers} {self.worker_class} worker{plural}{threads}"

    def worker_pids(self) -> list[int]:
        """Return the pids of gunicorn's workers (its master's children) while it runs."""
        import psutil

        if self.pid is None:
            return []
        try:
            return [child.pid for child in psutil.Process(self.pid).children()]
        except psutil.Error:
            return []

    def connections(self) -> list[int]:
        """Return how many client connections each worker holds open right now.

        A worker that keeps connections alive (gthread, uvicorn) serves every request sent on
        the connections it accepted; a sync worker holds one at a time.
        """
        import psutil

        counts = []
        for pid in self.worker_pids():
            try:
                held = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.Error:
                continue
            counts.append(sum(1 for c in held
                              if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == self.port))
        return counts

    def worker_memory(self) -> list[int]:
        """Return each worker's unique memory in bytes (USS): what one more worker would cost.

        Resident sizes (RSS) count pages shared with other processes once per process; the
        unique set is what the machine gets back when that worker stops.
        """
        import psutil

        sizes = []
        for pid in self.worker_pids():
            try:
                sizes.append(psutil.Process(pid).memory_full_info().uss)
            except psutil.Error:
                continue
        return sizes

    def _ready(self) -> bool:
        # gunicorn answers once its first worker has loaded the app: wait for all of them, so
        # a load test never runs while some workers are still importing Django.
        return super()._ready() and self.booted_workers() >= self.workers

    def booted_workers(self) -> int:
        """Return how many workers have loaded the application (``perflab.served`` says so)."""
        return sum(1 for _ in self.run_dir.glob("booted-*"))

    def _prepare(self) -> None:
        for old in self.run_dir.glob("booted-*"):  # a restart() keeps the folder
            old.unlink(missing_ok=True)

    def pids(self) -> list[int]:
        """Return gunicorn's master and its workers: what ``lab.load`` counts the CPU of."""
        return [self.pid, *self.worker_pids()] if self.pid is not None else []

    def _command(self) -> list[str]:
        return [
            self.require_binary(), "-m", "gunicorn",
            "--bind", self.address,
            "--workers", str(self.workers),
            "--worker-class", WORKER_CLASSES[self.worker_class],
            "--threads", str(self.threads),
            # Heartbeat files and the control socket in the learner's 0700 folder, not /tmp.
            "--worker-tmp-dir", str(self.run_dir),
            "--control-socket", str(self.run_dir / "gunicorn.ctl"),
            "--log-level", "warning",
            "--timeout", "60", "--graceful-timeout", "5",
            "--chdir", str(REPO_ROOT / "demo_project"),
            "perflab.served:application",
        ]

    def _environment(self) -> dict[str, str]:
        return {
            "PYTHONPATH": str(REPO_ROOT / "demo_project"),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_DEBUG_TOOLBAR": "0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": f"{LOOPBACK},localhost",
            # The kernel allows sync ORM calls inside Jupyter's event loop; a served worker
            # must refuse them in async views, as in production (SynchronousOnlyOperation).
            "DJANGO_ALLOW_ASYNC_UNSAFE": "",
            "PERFLAB_SERVE_APP": self.app,
            "PERFLAB_SERVE_SETTINGS": json.dumps(self.settings, default=str),
            "PERFLAB_SERVE_BOOTED_DIR": str(self.run_dir),  # perflab.served notes each worker
        }


class DelayedService(TCPService):
    """A loopback server that takes ``delay_ms`` over each answer: a slow service to wait on."""

    default_delay_ms: ClassVar[float] = 0.0
    answer: ClassVar[str] = "answer"  # what the delay is per, for repr

    def __init__(self, delay_ms: float | None = None, *, port: int | None = None,
                 strict: bool = False) -> None:
        delay_ms = self.default_delay_ms if delay_ms is None else delay_ms
        if delay_ms < 0:
            raise PerflabError(f"delay_ms must be 0 or more (got {delay_ms}).")
        super().__init__(port=port, strict=strict)
        self.delay_ms = delay_ms

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return (f"<{type(self).__name__} at {self.address}, {self.delay_ms:g} ms per "
                f"{self.answer}, {state}>")


class SlowUpstream(DelayedService):
    """A local HTTP server that answers GET /api/... after ``delay_ms``: a slow remote API."""

    name = "upstream"
    binary = "python"
    module = "perflab"
    packages = ("python3", "python", "python")
    default_delay_ms = 100.0
    ready_path = "/ready"  # answered at once, so waiting for it takes no delay

    def _command(self) -> list[str]:
        return [self.require_binary(), "-m", "perflab.upstream",
                "--port", str(self.port), "--delay-ms", str(self.delay_ms)]

    def _environment(self) -> dict[str, str]:
        return {"PYTHONPATH": str(REPO_ROOT / "demo_project")}


class _TCPServerExecutor(ReadyCheck, TCPExecutor):
    """Start a server and call it ready when its port accepts and `ready()` agrees."""
