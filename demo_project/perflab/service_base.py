"""Run one server process for a learner: the base class every perflab server derives from.

A :class:`Service` starts its installed binary on a Unix socket in a folder private to the
learner (0700), waits until it answers, records it (``perflab.processes``), and stops it again.
Each kind of server (``perflab.memcached``, ``perflab.redis_server``, ``perflab.postgres``)
says only what differs: its command, its readiness, its account, its package names.

No server outlives the process that started it: ``stop_all`` runs at exit, the server is
launched with a parent-death signal (``perflab.accounts``), and its record lets a later process
reap it (``perflab.processes``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import psutil
from mirakuru import UnixSocketExecutor
from mirakuru.exceptions import (
    AlreadyRunning,
    ExecutorError,
    ProcessExitedWithError,
    TimeoutExpired,
)

from perflab import accounts, processes
from perflab.errors import ServiceUnavailable
from perflab.paths import runtime_dir

if TYPE_CHECKING:
    from perflab.accounts import Account

__all__ = [
    "LOCK",
    "START_TIMEOUT",
    "InThisPython",
    "ReadyCheck",
    "Service",
    "live_services",
    "stop_all",
]

START_TIMEOUT = 30.0
"""Seconds a server gets to accept connections before we give up and show its log."""

#: Held while servers start and stop in this process, so two threads never race on one.
LOCK = threading.RLock()
_LIVE: dict[str, Service] = {}  # token -> Service; also keeps executors from being collected
_SPAWNER: ThreadPoolExecutor | None = None
_ServiceT = TypeVar("_ServiceT", bound="Service")


def live_services() -> list[Service]:
    """Return the servers this process started and has not stopped."""
    with LOCK:
        return list(_LIVE.values())


def stop_all() -> None:
    """Stop every server this process started, so a finished kernel leaves nothing behind."""
    with LOCK:
        services = [svc for svc in _LIVE.values() if svc._owner_pid == os.getpid()]
    for svc in services:
        with contextlib.suppress(Exception):  # one stubborn server must not keep others running
            svc.stop()


class Service:
    """Represent a server this process started: where it listens and how to stop it."""

    name: ClassVar[str]
    binary: ClassVar[str]
    #: Package names per installer: (apt, Homebrew, conda-forge).
    packages: ClassVar[tuple[str, str, str]]
    #: Where find_binary() looks, for the message when it finds nothing.
    searched: ClassVar[str] = "PATH"
    stop_signal: ClassVar[int] = signal.SIGTERM

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self._token = _new_token()
        # One folder per start, removed at stop: the socket, the pid file and the log.
        self.run_dir = runtime_dir() / f"{self.name}-{self._token[-8:]}"
        self.log_path = self.run_dir / f"{self.name}.log"
        self._executor: _ServerExecutor | None = None
        self._record_path: Path | None = None
        self._last_pid: int | None = None
        self._owner_pid = os.getpid()

    # What a caller asks of the kind of server, before any is started.

    @classmethod
    def find_binary(cls) -> str | None:
        """Return the server program's path, or None when it is not installed."""
        return shutil.which(cls.binary)

    @classmethod
    def available(cls) -> bool:
        """Return True when this server can be started here (its program is installed)."""
        return cls.find_binary() is not None

    @classmethod
    def require_binary(cls) -> str:
        """Return the server program's path, or raise ServiceUnavailable with install lines."""
        binary = cls.find_binary()
        if binary is None:
            raise ServiceUnavailable(cls.missing_binary_message())
        return binary

    @classmethod
    def install_commands(cls) -> dict[str, str]:
        """Return the command that installs the server, per installer (apt, brew, conda)."""
        apt, brew, conda = cls.packages
        return {
            "apt": f"sudo apt-get install {apt}",
            "brew": f"brew install {brew}",
            "conda": f"conda install -c conda-forge {conda}",
        }

    @classmethod
    def install_hint(cls) -> str:
        """Return the install commands, one line per package manager."""
        commands = cls.install_commands()
        return (
            f"Install it with one of:\n"
            f"  {commands['apt']}   # Debian, Ubuntu, Binder's apt.txt\n"
            f"  {commands['brew']}   # macOS with Homebrew\n"
            f"  {commands['conda']}   # conda or mamba environments\n"
            f"then run the cell again."
        )

    @classmethod
    def missing_binary_message(cls) -> str:
        """Return the error for a server that is not installed: what is missing, how to fix it."""
        return (
            f"{cls.name} is not available: no `{cls.binary}` program on {cls.searched}.\n"
            f"{cls.install_hint()}"
        )

    @classmethod
    def already_running(cls: type[_ServiceT]) -> _ServiceT | None:
        """Return the server start_service() should reuse instead of starting one, if any."""
        return None

    # One running server.

    @property
    def socket_path(self) -> Path:
        """Return the Unix socket the server listens on."""
        return self.run_dir / f"{self.name}.sock"

    @property
    def address(self) -> str:
        """Return the server's address as its Python clients take it (the socket's path)."""
        return str(self.socket_path)

    @property
    def url(self) -> str:
        """Return the address clients use."""
        return self.address

    @property
    def location(self) -> str:
        """Return the value for Django's CACHES[...]["LOCATION"]."""
        return self.url

    @property
    def pid(self) -> int | None:
        """Return the server's process id while it runs."""
        return self._last_pid if self.running else None

    @property
    def running(self) -> bool:
        """Return True while the server process is alive."""
        return self._executor is not None and self._executor.running()

    def start(self: _ServiceT) -> _ServiceT:
        """Start the server process and wait until it answers, or raise with its log's tail."""
        with LOCK:
            return self._launch()

    def stop(self) -> None:
        """Stop the server, forget its record and remove its folder; safe to call twice."""
        self._stop(keep_folder=False)

    def restart(self: _ServiceT) -> _ServiceT:
        """Stop and start the server on the same socket (a fresh memcached or Redis is empty)."""
        self._stop(keep_folder=True)
        return self.start()

    def __enter__(self: _ServiceT) -> _ServiceT:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {self.name} at {self.url} {state}>"

    # Hooks for the subclasses.

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Get folders and data ready before the server process starts."""

    def _ready(self) -> bool:
        """Return True once the server answers (beyond accepting connections)."""
        return True

    def _run_as(self) -> Account | None:
        """Return the account to run the server as, or None for this process's own."""
        return None

    def _cwd(self) -> Path:
        return self.run_dir

    def _environment(self) -> dict[str, str]:
        """Return variables to add to the server's environment (it inherits this process's)."""
        return {}

    def _make_executor(self, command: list[str], **kwargs: Any) -> UnixSocketExecutor:
        """Return the executor that starts the server and says when it is up (its socket)."""
        return _ServerExecutor(command, socket_name=str(self.socket_path), **kwargs)

    # The machinery.

    def _stop(self, *, keep_folder: bool) -> None:
        with LOCK:
            executor, self._executor = self._executor, None
            try:
                if executor is not None:
                    executor.stop()
            except ExecutorError:
                pass  # it had already exited on its own: nothing left to stop
            finally:
                if self._record_path is not None:
                    self._record_path.unlink(missing_ok=True)
                _LIVE.pop(self._token, None)
                if not keep_folder:
                    shutil.rmtree(self.run_dir, ignore_errors=True)

    def _launch(self: _ServiceT) -> _ServiceT:
        account = self._run_as()
        prefix, popen_kwargs = accounts.kill_with_parent(
            self.stop_signal, account, strict=self.strict
        )
        self.run_dir.mkdir(mode=0o700, exist_ok=True)  # again after a stop(): restart()
        self._prepare()
        self._record_path = processes.records_dir() / f"{self.name}-{self._token[-8:]}.json"
        # Marks the process so find_orphans() can tell our leftovers from anything else.
        envvars = {
            **self._environment(),
            **processes.marker_environment(self.name, self._token, self._record_path),
        }
        command = prefix + self._command()
        with self.log_path.open("wb") as log:
            log.write(f"$ {subprocess.list2cmdline(command)}\n".encode())
            log.flush()
            executor = self._make_executor(
                command,
                marker=self._token,
                ready=self._ready,
                timeout=START_TIMEOUT,
                sleep=0.05,
                stop_signal=self.stop_signal,
                envvars=envvars,
                cwd=str(self._cwd()),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                popen_kwargs=popen_kwargs,
            )
            try:
                _in_long_lived_thread(executor.start)
            except AlreadyRunning as exc:
                raise self._failed("found its socket already answering") from exc
            except TimeoutExpired as exc:
                raise self._failed(f"did not answer within {START_TIMEOUT:.0f} s") from exc
            except ProcessExitedWithError as exc:
                raise self._failed(f"exited with code {exc.exit_code}") from exc
            except OSError as exc:  # the binary could not be executed at all
                self._stop(keep_folder=False)
                raise ServiceUnavailable(f"Could not run {command[0]}: {exc}") from exc
        assert executor.process is not None
        self._executor = executor
        self._last_pid = executor.process.pid
        _LIVE[self._token] = self
        try:
            processes.write_record(
                self._record_path,
                pid=self._last_pid,
                owner_pid=self._owner_pid,
                token=self._token,
                name=self.name,
                address=self.address,
                run_dir=str(self.run_dir),
                stop_signal=int(self.stop_signal),
                user=account.pw_name if account else accounts.current_user(),
            )
        except psutil.NoSuchProcess as exc:
            raise self._failed("exited right after it started") from exc
        return self

    def _failed(self, what: str) -> ServiceUnavailable:
        """Stop what is left, remove the folder, and return the error with the log's tail."""
        tail = processes.tail(self.log_path)
        self._stop(keep_folder=False)
        return ServiceUnavailable(f"{self.name} {what}. The end of its log:\n{tail}")


class ReadyCheck:
    """Mixin for a mirakuru executor: our marker, and ready only once ``ready()`` agrees too."""

    def __init__(
        self, command: list[str], *, marker: str, ready: Callable[[], bool], **kwargs: Any
    ) -> None:
        super().__init__(command, **kwargs)  # type: ignore[call-arg]
        # mirakuru's own atexit SIGKILLs every process whose marker *contains* the exiting
        # process's pid as a substring; a marker without digits keeps other Python processes'
        # exits away from our servers (stop_all() stops ours gracefully instead).
        self._uuid = marker
        self._ready = ready

    def after_start_check(self) -> bool:
        return super().after_start_check() and self._ready()  # type: ignore[misc]


class _ServerExecutor(ReadyCheck, UnixSocketExecutor):
    """Start a server and call it ready when its socket accepts and `ready()` agrees."""


class InThisPython:
    """Mixin for a Service whose program is a package of this Python (``python -m module``)."""

    name: ClassVar[str]
    module: ClassVar[str]

    @classmethod
    def find_binary(cls) -> str | None:
        """Return this Python when the package is installed, else None."""
        import importlib.util

        found = importlib.util.find_spec(cls.module.split(".")[0]) is not None
        return sys.executable if found else None

    @classmethod
    def missing_binary_message(cls) -> str:
        """Return the error for a missing package: it comes with the pinned lock."""
        return (
            f"{cls.name} is not available: no `{cls.module}` package in this Python. It comes "
            "with the workshop's pinned packages: .venv/bin/pip install -r requirements.txt "
            "(or `make setup`), then restart the kernel."
        )


def _in_long_lived_thread(start: Callable[[], object]) -> None:
    """Run `start` in a thread that lives as long as the process.

    The parent-death signal fires when the *thread* that forked the server ends, so a server
    started from a short-lived worker thread would be stopped when that thread finished.
    """
    global _SPAWNER
    if threading.current_thread() is threading.main_thread():
        start()
        return
    with LOCK:
        if _SPAWNER is None:
            _SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perflab-services")
    _SPAWNER.submit(start).result()


def _new_token() -> str:
    # Letters only: see _ServerExecutor for why the marker must not contain digits.
    return "perflab-" + secrets.token_hex(16).translate(str.maketrans("0123456789", "ghijklmnop"))


# Registered after mirakuru's own atexit hook (imported above), so it runs first: servers get a
# graceful stop before mirakuru would SIGKILL anything.
atexit.register(stop_all)
