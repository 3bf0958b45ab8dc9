"""Slow work off the request: a Celery worker and the SMTP server the shop's mail goes to.

``CeleryWorker`` runs ``celery -A perflab.celery_app worker`` on the lab's database, with the
learner's Redis as its broker, on Redis's socket in the learner's 0700 folder (Celery spells it
``redis+socket://``): no other user can queue a task or read one. It is ready when Celery says
so (``worker_ready``, which touches a file).

``SmtpServer`` runs ``perflab.smtp_server`` (aiosmtpd) on a free loopback port with a user and
a random password of its own: Django's SMTP backend cannot use a Unix socket, so the password
keeps other local users from sending through it. ``settings`` gives the EMAIL_* settings that
point Django at it; ``count()`` and ``messages()`` read what it received.

Both are ``perflab.service_base.Service``s: recorded, stopped at exit, launched with a
parent-death signal, reaped after a killed kernel. A prefork worker's children leave with it.
"""

from __future__ import annotations

import contextlib
import email
import json
import os
import secrets
import signal
import smtplib
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import psutil
from mirakuru import PidExecutor

from perflab.errors import PerflabError
from perflab.paths import REPO_ROOT
from perflab.service_base import InThisPython, ReadyCheck, Service
from perflab.web import LOOPBACK, DelayedService

__all__ = ["POOLS", "CeleryWorker", "SmtpServer"]

POOLS = ("prefork", "threads", "solo")


class SmtpServer(DelayedService):
    """A slow SMTP server on 127.0.0.1 that wants a password; it keeps what it receives."""

    name = "smtp"
    binary = "python"
    module = "aiosmtpd"
    packages = ("aiosmtpd", "aiosmtpd", "aiosmtpd")
    answer = "message"

    def __init__(self, delay_ms: float | None = None, *, port: int | None = None,
                 strict: bool = False) -> None:
        super().__init__(delay_ms, port=port, strict=strict)
        self.user = "shop"
        self.password = secrets.token_urlsafe(16)

    @property
    def mailbox(self) -> Path:
        return self.run_dir / "mailbox"

    @property
    def settings(self) -> dict[str, Any]:
        """Return the Django settings that send mail through this server.

        ``MAILERS`` on Django 6.1, which deprecates the ``EMAIL_*`` settings 5.2 reads.
        """
        import django

        backend = "django.core.mail.backends.smtp.EmailBackend"
        if django.VERSION >= (6, 1):
            options = {"host": LOOPBACK, "port": self.port, "username": self.user,
                       "password": self.password, "use_tls": False, "timeout": 30}
            return {"MAILERS": {"default": {"BACKEND": backend, "OPTIONS": options}}}
        return {
            "EMAIL_BACKEND": backend,
            "EMAIL_HOST": LOOPBACK,
            "EMAIL_PORT": self.port,
            "EMAIL_HOST_USER": self.user,
            "EMAIL_HOST_PASSWORD": self.password,
            "EMAIL_USE_TLS": False,
        }

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """Stop the server for the block, then start it again on its port: a relay's outage."""
        self._stop(keep_folder=True)  # the mailbox stays
        try:
            yield
        finally:
            self.start()

    def count(self) -> int:
        """Return how many messages the server has accepted."""
        try:
            return int((self.mailbox / "count").read_text())
        except (OSError, ValueError):
            return 0

    def started(self) -> int:
        """Return how many messages clients have begun to send (the slow part included)."""
        try:
            return int((self.mailbox / "started").read_text())
        except (OSError, ValueError):
            return 0

    def messages(self) -> list[Message]:
        """Return the messages kept so far, oldest first."""
        return [email.message_from_bytes(path.read_bytes())
                for path in sorted(self.mailbox.glob("*.eml"))]

    def _ready(self) -> bool:
        try:
            with smtplib.SMTP(LOOPBACK, self.port, timeout=5) as client:
                return client.noop()[0] == 250
        except (OSError, smtplib.SMTPException):
            return False

    def _command(self) -> list[str]:
        return [self.require_binary(), "-m", "perflab.smtp_server", "--port", str(self.port),
                "--delay-ms", str(self.delay_ms), "--mailbox", str(self.mailbox)]

    def _environment(self) -> dict[str, str]:
        return {
            "PYTHONPATH": str(REPO_ROOT / "demo_project"),
            "PERFLAB_SMTP_USER": self.user,
            "PERFLAB_SMTP_PASSWORD": self.password,
        }


class CeleryWorker(InThisPython, Service):
    """A Celery worker for the shop's tasks, on the lab's database and the learner's Redis."""

    name = "celery"
    binary = "celery"
    module = "celery"
    packages = ("celery", "celery", "celery")

    def __init__(
        self,
        broker_url: str,
        *,
        concurrency: int = 1,
        pool: str = "prefork",
        settings: dict[str, Any] | None = None,
        strict: bool = False,
    ) -> None:
        if pool not in POOLS:
            from perflab.errors import UnknownChoice

            raise UnknownChoice("pool", pool, POOLS)
        if concurrency < 1:
            raise PerflabError(f"concurrency must be 1 or more (got {concurrency}).")
        if not broker_url.startswith("redis+socket://"):
            raise PerflabError(
                "The worker's broker must be Redis on the learner's socket "
                f"(redis+socket:///path/redis.sock), not {broker_url!r}: a broker on TCP would "
                "take tasks from any local user."
            )
        super().__init__(strict=strict)
        self.broker_url = broker_url
        self.concurrency = concurrency
        self.pool = pool
        # The results go to the same Redis: result.get() and result.state in the kernel.
        self.settings = {**(settings or {}), **self.client_settings}

    @property
    def address(self) -> str:
        return self.broker_url

    @property
    def client_settings(self) -> dict[str, Any]:
        """Return the Django settings with which a served shop queues its tasks for this worker."""
        return {"CELERY_BROKER_URL": self.broker_url, "CELERY_RESULT_BACKEND": self.broker_url,
                "CELERY_TASK_ALWAYS_EAGER": False}

    @property
    def ready_file(self) -> Path:
        return self.run_dir / "ready"

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<CeleryWorker {self.pool} x {self.concurrency} on {self.broker_url}, {state}>"

    def queued(self, queue: str = "celery") -> int:
        """Return how many tasks wait in the broker's queue, not yet taken by a worker."""
        import redis

        client = redis.Redis(unix_socket_path=self.broker_url.removeprefix("redis+socket://"))
        try:
            return int(client.llen(queue))
        finally:
            client.close()

    def pool_pids(self) -> list[int]:
        """Return the pids of the processes that run the tasks (prefork's children)."""
        if not self.running:
            return []
        return [child.pid for child in psutil.Process(self.pid).children()]

    def kill(self, *, pool_only: bool = False) -> None:
        """Kill the worker with SIGKILL mid-work, as a crash or the OOM killer would.

        ``pool_only`` kills the pool's processes and leaves the main process, which notices and
        starts new ones; otherwise the whole worker goes, and ``start()`` brings it back.
        """
        if pool_only and self.pool != "prefork":
            raise PerflabError(f"Only a prefork pool has processes of its own, not {self.pool}.")
        victims = self.pool_pids() if pool_only else [*self.pool_pids(), *filter(None, [self.pid])]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        psutil.wait_procs([p for p in map(_process, victims) if p is not None], timeout=10)
        if not pool_only:
            self._stop(keep_folder=True)  # forget the dead process; start() runs a new one

    def _command(self) -> list[str]:
        return [
            self.require_binary(), "-m", "celery", "-A", "perflab.celery_app", "worker",
            "--pool", self.pool, "--concurrency", str(self.concurrency),
            "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "--hostname", f"perflab-{self.run_dir.name}@localhost",
        ]

    def _prepare(self) -> None:
        self.ready_file.unlink(missing_ok=True)  # a restart waits for a new one

    def _environment(self) -> dict[str, str]:
        return {
            "PYTHONPATH": str(REPO_ROOT / "demo_project"),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "PERFLAB_SERVE_SETTINGS": json.dumps(self.settings, default=str),
            "PERFLAB_READY_FILE": str(self.ready_file),
        }

    def _make_executor(self, command: list[str], **kwargs: Any) -> PidExecutor:
        return _ReadyFileExecutor(command, filename=str(self.ready_file), **kwargs)


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


class _ReadyFileExecutor(ReadyCheck, PidExecutor):
    """Start a process and call it ready once it has created a file (and ``ready()`` agrees)."""
