"""Start real memcached, Redis and PostgreSQL servers for one learner; never leave them behind.

A lesson about caching or databases measures the real server, not a stand-in. Each server runs
from the installed binary and listens on a Unix socket only, in a folder private to the learner
(0700), so on a shared host no other user can reach it: no TCP port, no password to leak.
PostgreSQL adds peer authentication on top. Three layers make sure no server outlives the kernel
that started it:

1. ``atexit`` stops every server this process started (normal exit, kernel restart).
2. On Linux the server is launched through util-linux ``setpriv --pdeathsig``, so the kernel sends
   it a stop signal the moment its parent dies, even by SIGKILL.
3. Every start writes a small JSON record (owner pid, server pid, start times); the next start, in
   any process, stops servers whose owner is gone. ``find_orphans()`` lets CI check for leftovers.
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import glob
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import quote

import psutil
from mirakuru import UnixSocketExecutor
from mirakuru.exceptions import (
    AlreadyRunning,
    ExecutorError,
    ProcessExitedWithError,
    TimeoutExpired,
)

from perflab.errors import ServiceUnavailable, UnknownChoice
from perflab.paths import remembered_temp_dir, runtime_dir, state_dir

try:
    import pwd
except ImportError:  # Windows: nothing here can run, but importing perflab must still work
    pwd = None  # type: ignore[assignment]

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "SERVICES",
    "START_TIMEOUT",
    "MemcachedService",
    "PostgresClient",
    "PostgresService",
    "RedisService",
    "Service",
    "find_orphans",
    "install_hint",
    "is_strict",
    "postgres_home",
    "reap_orphans",
    "running_services",
    "service_available",
    "start_service",
    "stop_all",
    "stop_recorded",
]

SERVICES = ("memcached", "redis", "postgres")
START_TIMEOUT = 30.0
"""Seconds a server gets to accept connections before we give up and show its log."""

#: PostgreSQL listens on no TCP port; the number only names its socket file (.s.PGSQL.5432).
POSTGRES_PORT = 5432
_MARKER = "perflab-service"
_RECORD_KEYS = {"token", "name", "pid", "pid_started", "owner_pid", "owner_started", "stop_signal"}
_REAP_TIMEOUT = 10.0
#: A run folder with no record is a start still under way for this long, then a leftover.
_STRAY_AFTER = START_TIMEOUT * 4

# Package names per installer: (apt, Homebrew, conda-forge).
_INSTALL_NAMES = {
    "memcached": ("memcached", "memcached", "memcached"),
    "redis": ("redis-server", "redis", "redis-server"),
    "postgres": ("postgresql", "postgresql@17", "postgresql"),
}
# Where packaged PostgreSQL servers live when they are not on PATH (Debian, RHEL, Homebrew).
_POSTGRES_BINDIR_GLOBS: tuple[str, ...] = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
)

_LIVE: dict[str, Service] = {}  # token -> Service; also keeps executors from being collected
_LOCK = threading.RLock()
_SPAWNER: ThreadPoolExecutor | None = None
_ServiceT = TypeVar("_ServiceT", bound="Service")


def is_strict() -> bool:
    """Return True when PERFLAB_STRICT=1, so CI fails where a learner's notebook would go on."""
    return os.environ.get("PERFLAB_STRICT") == "1"


def install_hint(name: str) -> str:
    """Return the install commands for a service's server, one line per package manager."""
    apt, brew, conda = _INSTALL_NAMES[_check_name(name)]
    return (
        f"Install it with one of:\n"
        f"  sudo apt-get install {apt}   # Debian, Ubuntu, Binder's apt.txt\n"
        f"  brew install {brew}   # macOS with Homebrew\n"
        f"  conda install -c conda-forge {conda}   # conda or mamba environments\n"
        f"then run the cell again."
    )


def service_available(name: str) -> bool:
    """Return True when the server for `name` is installed, so a notebook can skip the demo."""
    _check_name(name)
    if name == "postgres" and _is_root() and _postgres_account() is None:
        return False
    return _find_binary(name) is not None


def postgres_home() -> Path:
    """Return this user's PostgreSQL folder (data, log), which the server user can enter.

    As a normal user it sits in the state root. As root, PostgreSQL must run as the ``postgres``
    user, who can't enter root's home: it gets a folder of its own in the temp directory, with a
    random name (another user can't create it first) that root's state root remembers.
    """
    if not _is_root():
        return state_dir("services", "postgres")
    account = _postgres_account()
    if account is None:
        raise ServiceUnavailable(_NO_POSTGRES_USER)
    return remembered_temp_dir(
        state_dir("services") / "postgres-home", prefix="perflab-pg-",
        owner=(account.pw_uid, account.pw_gid),
    )


def start_service(name: str, *, strict: bool | None = None) -> Service:
    """Start a real server on a Unix socket in this user's private folder.

    ``strict`` (default: ``PERFLAB_STRICT=1``) refuses to start without the kill-on-parent-death
    guard on Linux instead of relying on the reaper alone. Raises ServiceUnavailable when the
    server can't start; the caller decides whether to go on.
    """
    cls = _SERVICE_CLASSES[_check_name(name)]
    strict = is_strict() if strict is None else strict
    with _LOCK:
        if _find_binary(name) is None:
            raise ServiceUnavailable(_missing_binary_message(name))
        reap_orphans()
        if cls is PostgresService:
            existing = _running_postgres()
            if existing is not None:
                return existing
        return cls(strict=strict)._launch()


def stop_all() -> None:
    """Stop every server this process started, so a finished kernel leaves nothing behind."""
    with _LOCK:
        services = [svc for svc in _LIVE.values() if svc._owner_pid == os.getpid()]
    for svc in services:
        with contextlib.suppress(Exception):  # one stubborn server must not keep others running
            svc.stop()


def stop_recorded() -> list[int]:
    """Stop every server this user's processes started, whoever owns it; return their pids.

    For ``python -m perflab services stop-all``: a learner clearing up after kernels that are
    still running (or hung) without hunting for pids.
    """
    stopped = []
    for path, record in _read_records():
        pid = record["pid"]
        if _same_process(pid, record["pid_started"]) and _terminate(pid, record["stop_signal"]):
            stopped.append(pid)
        path.unlink(missing_ok=True)
        _remove_run_dir(record)
    return stopped


def running_services() -> list[dict[str, Any]]:
    """Return the records of servers still running for this user, dropping those that died."""
    result = []
    for path, record in _read_records():
        if not _same_process(record["pid"], record["pid_started"]):
            path.unlink(missing_ok=True)
            _remove_run_dir(record)
            continue
        record["owner_alive"] = _same_process(record["owner_pid"], record["owner_started"])
        result.append(record)
    return result


def reap_orphans() -> list[int]:
    """Stop servers whose owning process died without stopping them; return their pids.

    Also removes the run folders such servers (and starts that never finished) left behind.
    """
    reaped = []
    for path, record in _read_records():
        if _same_process(record["owner_pid"], record["owner_started"]):
            continue
        pid = record["pid"]
        if _same_process(pid, record["pid_started"]):
            if not _terminate(pid, record["stop_signal"]):
                continue  # not ours to signal; find_orphans() will keep reporting it
            reaped.append(pid)
        path.unlink(missing_ok=True)
        _remove_run_dir(record)
    _remove_stray_run_dirs()
    return reaped


def find_orphans() -> list[int]:
    """Return pids of perflab servers with no record or a dead owner, for a CI leftover check."""
    orphans = []
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
            if "PERFLAB_SERVICE" not in env or proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except (psutil.Error, OSError):
            continue  # another user's process, or gone already
        record = _load_record(Path(env.get("PERFLAB_SERVICE_RECORD", "")))
        if (
            record is None
            or record.get("token") != env.get("PERFLAB_SERVICE_TOKEN")
            or not _same_process(record["owner_pid"], record["owner_started"])
        ):
            orphans.append(proc.pid)
    return orphans


class Service:
    """Represent a server this process started: where it listens and how to stop it."""

    name: ClassVar[str]
    binary: ClassVar[str]
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

    def stop(self) -> None:
        """Stop the server, forget its record and remove its folder; safe to call twice."""
        self._stop(keep_folder=False)

    def restart(self: _ServiceT) -> _ServiceT:
        """Stop and start the server on the same socket (a fresh memcached or Redis is empty)."""
        self._stop(keep_folder=True)
        with _LOCK:
            return self._launch()

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

    def _run_as(self) -> pwd.struct_passwd | None:
        """Return the account to run the server as, or None for this process's own."""
        return None

    def _cwd(self) -> Path:
        return self.run_dir

    def _stop(self, *, keep_folder: bool) -> None:
        with _LOCK:
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
        """Start the server process and wait until it answers, or raise with its log's tail."""
        account = self._run_as()
        prefix, popen_kwargs = _guard(self.stop_signal, account, strict=self.strict)
        self.run_dir.mkdir(mode=0o700, exist_ok=True)  # again after a stop(): restart()
        self._prepare()
        records = state_dir("services", "running")
        self._record_path = records / f"{self.name}-{self._token[-8:]}.json"
        envvars = {
            # Marks the process so find_orphans() can tell our leftovers from anything else.
            "PERFLAB_SERVICE": self.name,
            "PERFLAB_SERVICE_TOKEN": self._token,
            "PERFLAB_SERVICE_OWNER": str(os.getpid()),
            "PERFLAB_SERVICE_RECORD": str(self._record_path),
        }
        command = prefix + self._command()
        with self.log_path.open("wb") as log:
            log.write(f"$ {subprocess.list2cmdline(command)}\n".encode())
            log.flush()
            executor = _ServerExecutor(
                command,
                socket_name=str(self.socket_path),
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
            self._write_record(account)
        except psutil.NoSuchProcess as exc:
            raise self._failed("exited right after it started") from exc
        return self

    def _failed(self, what: str) -> ServiceUnavailable:
        """Stop what is left, remove the folder, and return the error with the log's tail."""
        tail = _tail(self.log_path)
        self._stop(keep_folder=False)
        return ServiceUnavailable(f"{self.name} {what}. The end of its log:\n{tail}")

    def _write_record(self, account: pwd.struct_passwd | None) -> None:
        assert self._record_path is not None and self._last_pid is not None
        record = {
            "marker": _MARKER,
            "token": self._token,
            "name": self.name,
            "address": self.address,
            "run_dir": str(self.run_dir),
            "pid": self._last_pid,
            "pid_started": psutil.Process(self._last_pid).create_time(),
            "owner_pid": self._owner_pid,
            "owner_started": psutil.Process(self._owner_pid).create_time(),
            "stop_signal": int(self.stop_signal),
            "user": account.pw_name if account else _current_user(),
            "started_at": time.time(),
        }
        tmp = self._record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(self._record_path)


class MemcachedService(Service):
    """Run memcached: an in-memory cache that forgets everything when it restarts."""

    name = "memcached"
    binary = "memcached"

    @property
    def location(self) -> str:
        """Return Django's LOCATION for PyMemcacheCache: ``unix:`` and the socket's path."""
        return f"unix:{self.socket_path}"

    def _command(self) -> list[str]:
        # -s turns TCP off; -a 0700 keeps the socket its owner's alone.
        command = [_require_binary(self.name), "-s", str(self.socket_path), "-a", "0700"]
        command += ["-m", "64"]
        if _is_root():
            command += ["-u", "root"]  # memcached won't run as root unless told which user
        return command


class RedisService(Service):
    """Run Redis with persistence off, as a cache for Django's RedisCache."""

    name = "redis"
    binary = "redis-server"

    @property
    def url(self) -> str:
        """Return the unix:// URL for database 0 (redis-py and Django's RedisCache take it)."""
        return f"unix://{self.socket_path}?db=0"

    def _command(self) -> list[str]:
        return [
            _require_binary(self.name),
            # --port 0: no TCP at all; the socket is its owner's alone.
            *("--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"),
            *("--save", "", "--appendonly", "no", "--dir", str(self.run_dir)),
        ]


class PostgresClient:
    """Talk to a running perflab PostgreSQL: URLs, connections, databases made and dropped.

    ``host`` is the folder holding the server's socket, as libpq and Django's HOST take it.
    """

    host: str
    port: int
    user = "postgres"

    @property
    def url(self) -> str:
        """Return the URL of the default database."""
        return self.database_url()

    def database_url(self, dbname: str = "postgres") -> str:
        """Return a URL for one database (socket folder percent-encoded, as libpq reads it)."""
        return f"postgres://{self.user}@{quote(self.host, safe='')}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """Open an autocommit connection, so CREATE/DROP DATABASE work without ceremony."""
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=dbname,
            autocommit=True,
            connect_timeout=10,
        )

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create a database (a fast file copy when `template` is given) and return its URL."""
        from psycopg import sql

        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with self.connect() as conn:
            conn.execute(query)
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists, closing any connections still using it."""
        from psycopg import sql

        query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        with self.connect() as conn:
            conn.execute(query)

    def database_exists(self, name: str) -> bool:
        """Return True when the database exists (a template built by an earlier kernel, say)."""
        with self.connect() as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None


class PostgresService(PostgresClient, Service):
    """Run PostgreSQL tuned for a lab (no fsync), with data kept between kernels.

    It listens on no TCP port (``listen_addresses=''``), only on a socket in a 0700 folder, and
    accepts only this OS user (peer authentication), as the role ``postgres``.
    """

    name = "postgres"
    binary = "postgres"
    stop_signal = signal.SIGINT  # "fast shutdown": roll back open transactions and exit

    def __init__(self, *, strict: bool = False) -> None:
        self.home = postgres_home()
        self.data_dir = self.home / "data"
        super().__init__(strict=strict)
        if _is_root():
            # The server runs as postgres, who can't enter root's runtime folder.
            self.run_dir = self.home / "run"
        self.log_path = self.home / "postgres.log"
        self.host = str(self.run_dir)
        self.port = POSTGRES_PORT

    @property
    def socket_path(self) -> Path:
        """Return the socket file PostgreSQL makes in its folder."""
        return self.run_dir / f".s.PGSQL.{self.port}"

    @property
    def address(self) -> str:
        """Return the folder holding the socket, as libpq's ``host`` takes it."""
        return self.host

    def _run_as(self) -> pwd.struct_passwd | None:
        if not _is_root():
            return None
        account = _postgres_account()
        if account is None:
            raise ServiceUnavailable(_NO_POSTGRES_USER)
        return account

    def _cwd(self) -> Path:
        return self.home  # the server user can't enter root's state folder

    def _prepare(self) -> None:
        account = self._run_as()
        bindir = _postgres_bindir()
        if bindir is None:
            raise ServiceUnavailable(_missing_binary_message(self.name))
        self._ensure_cluster(bindir, account)
        self._write_access_rules(account)
        self._clear_stale_pidfile()
        # No server runs here (start_service checked): a killed one's socket lock is stale.
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(mode=0o700)
        if account is not None:
            os.chown(self.run_dir, account.pw_uid, account.pw_gid)

    def _command(self) -> list[str]:
        bindir = _postgres_bindir()
        assert bindir is not None
        settings = [
            "listen_addresses=",  # no TCP: the socket in a 0700 folder is the only way in
            "unix_socket_permissions=0700",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
        ]
        command = [str(bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        command += ["-k", str(self.run_dir)]
        for setting in settings:
            command += ["-c", setting]
        return command

    def _ready(self) -> bool:
        # Accepting connections is not enough: during startup PostgreSQL answers "starting up".
        # Line 8 of postmaster.pid says "ready" once it takes connections (PostgreSQL 10+).
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready"

    def _ensure_cluster(self, bindir: Path, account: pwd.struct_passwd | None) -> None:
        """Create the data folder with initdb unless a usable one is already there."""
        version_file = self.data_dir / "PG_VERSION"
        if version_file.exists():
            if version_file.read_text().strip() == _postgres_major(bindir):
                return
            # Made by another PostgreSQL version (or half-made): lab data, so rebuild it.
            shutil.rmtree(self.data_dir)
        elif self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        prefix, popen_kwargs = _as_user(account)
        command = [
            *prefix,
            str(bindir / "initdb"),
            *("-D", str(self.data_dir), "-U", self.user),
            # Replaced at once by _write_access_rules; never trust, even for a moment.
            *("--auth-local=peer", "--auth-host=reject"),
            *("-E", "UTF8", "--locale=C", "--no-sync"),
        ]
        result = subprocess.run(
            command,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **popen_kwargs,
        )
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise ServiceUnavailable(
                f"initdb could not create {self.data_dir} (exit code {result.returncode}):\n"
                f"{output}"
            )

    def _write_access_rules(self, account: pwd.struct_passwd | None) -> None:
        """Let in this OS user alone, over the socket, as the role postgres; nothing over TCP.

        Written at every start, so a data folder made by an older perflab (trust on TCP) is
        locked down too.
        """
        me = _current_user()
        rules = {
            "pg_hba.conf": (
                "# perflab: the socket only (listen_addresses is empty), and only the OS user\n"
                "# who started the lab, mapped to the role postgres (peer authentication).\n"
                "local all all peer map=perflab\n"
                "local replication all peer map=perflab\n"
            ),
            "pg_ident.conf": (
                "# perflab: MAPNAME SYSTEM-USERNAME PG-USERNAME\n"
                f"perflab {me} {self.user}\n"
                + (f"perflab {account.pw_name} {self.user}\n" if account else "")
            ),
        }
        for name, text in rules.items():
            path = self.data_dir / name
            tmp = path.with_suffix(".perflab-tmp")
            tmp.write_text(text)
            tmp.chmod(0o600)
            if account is not None:
                os.chown(tmp, account.pw_uid, account.pw_gid)
            tmp.replace(path)

    def _clear_stale_pidfile(self) -> None:
        """Remove postmaster.pid left by a server that died, once its backends are gone too."""
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists() or _live_postmaster(self.data_dir) is not None:
            return
        # Backends of a killed server notice within a second; until then the old shared memory
        # is in use and a new server refuses to start.
        deadline = time.monotonic() + _REAP_TIMEOUT
        while _processes_in(self.data_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
        # PostgreSQL ignores a stale file itself, unless its pid now belongs to another process
        # (common in containers); removing it avoids that false "already running".
        pidfile.unlink(missing_ok=True)


_SERVICE_CLASSES: dict[str, type[Service]] = {
    "memcached": MemcachedService,
    "redis": RedisService,
    "postgres": PostgresService,
}

_NO_POSTGRES_USER = (
    "PostgreSQL refuses to run as root, and there is no 'postgres' user to run it as. "
    "Create one (sudo useradd --system --create-home postgres) or run Jupyter as a normal user."
)


class _ServerExecutor(UnixSocketExecutor):
    """Start a server and call it ready when its socket accepts and `ready()` agrees."""

    def __init__(
        self,
        command: list[str],
        *,
        socket_name: str,
        marker: str,
        ready: Callable[[], bool],
        **kwargs: Any,
    ) -> None:
        super().__init__(command, socket_name=socket_name, **kwargs)
        # mirakuru's own atexit SIGKILLs every process whose marker *contains* the exiting
        # process's pid as a substring; a marker without digits keeps other Python processes'
        # exits away from our servers (stop_all() stops ours gracefully instead).
        self._uuid = marker
        self._ready = ready

    def after_start_check(self) -> bool:
        return super().after_start_check() and self._ready()


def _running_postgres() -> PostgresService | None:
    """Return this process's PostgreSQL if it runs, or raise if another process runs one."""
    data = postgres_home() / "data"
    live = _live_postmaster(data)
    if live is None:
        return None
    pid, _ = live
    for svc in _LIVE.values():
        if isinstance(svc, PostgresService) and svc.pid == pid:
            return svc
    owners = [r["owner_pid"] for _, r in _read_records() if r["pid"] == pid]
    owner = f"process {owners[0]}" if owners else "a process perflab does not know"
    raise ServiceUnavailable(
        f"A PostgreSQL server (pid {pid}) is already running on {data}, started by {owner}. "
        f"Only one perflab PostgreSQL runs per user: shut down the other notebook's kernel, or "
        f"stop it with `python3 -m perflab services stop-all`, then try again."
    )


def _remove_run_dir(record: dict[str, Any]) -> None:
    """Remove a stopped server's run folder, if it is one of ours in the runtime folder."""
    folder = Path(str(record.get("run_dir", "")))
    if folder.name and folder.parent == runtime_dir():
        shutil.rmtree(folder, ignore_errors=True)


def _remove_stray_run_dirs() -> None:
    """Remove run folders no record names (a start killed mid-way), once they are old enough."""
    for old in state_dir("services").iterdir():  # one per start, from perflab before sockets
        if re.fullmatch(r"(memcached|redis)-\d+", old.name):
            shutil.rmtree(old, ignore_errors=True)
    named = {str(record.get("run_dir")) for _, record in _read_records()}
    now = time.time()
    for folder in runtime_dir().iterdir():
        if not re.fullmatch(r"(memcached|redis|postgres)-[a-p]{8}", folder.name):
            continue
        with contextlib.suppress(OSError):
            if str(folder) not in named and now - folder.stat().st_mtime > _STRAY_AFTER:
                shutil.rmtree(folder, ignore_errors=True)


def _live_postmaster(data: Path) -> tuple[int, int] | None:
    """Return (pid, port) of the server running on `data`, per its postmaster.pid."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3]) if len(lines) > 3 else 0
    except (OSError, ValueError, IndexError):
        return None
    try:
        proc = psutil.Process(pid)
        # A recycled pid is not our server: the postmaster runs in its data folder.
        alive = (
            proc.status() != psutil.STATUS_ZOMBIE
            and proc.name() in ("postgres", "postmaster")
            and Path(proc.cwd()).resolve() == data.resolve()
        )
    except (psutil.Error, OSError):
        alive = False
    return (pid, port) if alive else None


def _processes_in(folder: Path) -> list[int]:
    target = str(folder.resolve())
    pids = []
    for proc in psutil.process_iter(["cwd"]):
        if proc.info["cwd"] == target:
            pids.append(proc.pid)
    return pids


def _postgres_bindir() -> Path | None:
    """Return the folder holding postgres and initdb: PATH, then pg_config, then the newest."""
    candidates: list[Path] = []
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(out.stdout.strip()))
    packaged = [Path(p) for pattern in _POSTGRES_BINDIR_GLOBS for p in glob.glob(pattern)]
    candidates += sorted(packaged, key=_version_key, reverse=True)
    for folder in candidates:
        if all(os.access(folder / exe, os.X_OK) for exe in ("postgres", "initdb")):
            return folder
    return None


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(path)))


def _postgres_major(bindir: Path) -> str:
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    return match.group(1) if match else ""


def _postgres_account() -> pwd.struct_passwd | None:
    if pwd is None:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def _find_binary(name: str) -> str | None:
    if name == "postgres":
        bindir = _postgres_bindir()
        return str(bindir / "postgres") if bindir else None
    return shutil.which(_SERVICE_CLASSES[name].binary)


def _require_binary(name: str) -> str:
    binary = _find_binary(name)
    if binary is None:
        raise ServiceUnavailable(_missing_binary_message(name))
    return binary


def _missing_binary_message(name: str) -> str:
    binary = _SERVICE_CLASSES[name].binary
    where = "PATH, pg_config or the usual install folders" if name == "postgres" else "PATH"
    return f"{name} is not available: no `{binary}` program on {where}.\n{install_hint(name)}"


def _check_name(name: str) -> str:
    if name not in SERVICES:
        raise UnknownChoice("service", name, SERVICES)
    return name


def _guard(
    stop_signal: int, account: pwd.struct_passwd | None, *, strict: bool
) -> tuple[list[str], dict[str, Any]]:
    """Return the command prefix (and Popen options) that stop the server if we die."""
    setpriv = _setpriv()
    if setpriv is None:
        if strict and sys.platform.startswith("linux"):
            raise ServiceUnavailable(
                "setpriv (util-linux) is missing, so a killed kernel would leave servers running "
                "until the next start. Install util-linux, or unset PERFLAB_STRICT."
            )
        return _as_user(account)
    # setpriv sets the death signal after switching user, so the uid change can't clear it.
    prefix = [setpriv, "--pdeathsig", signal.Signals(stop_signal).name]
    if account is not None:
        prefix += _setpriv_user(account)
    return prefix, {}


def _as_user(account: pwd.struct_passwd | None) -> tuple[list[str], dict[str, Any]]:
    """Return how to run a command as `account`: a setpriv prefix, or Popen's own options."""
    if account is None:
        return [], {}
    setpriv = _setpriv()
    if setpriv is not None:
        return [setpriv, *_setpriv_user(account)], {}
    return [], {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _setpriv_user(account: pwd.struct_passwd) -> list[str]:
    return ["--reuid", str(account.pw_uid), "--regid", str(account.pw_gid), "--init-groups"]


def _setpriv() -> str | None:
    return shutil.which("setpriv") if sys.platform.startswith("linux") else None


def _in_long_lived_thread(start: Callable[[], object]) -> None:
    """Run `start` in a thread that lives as long as the process.

    The parent-death signal fires when the *thread* that forked the server ends, so a server
    started from a short-lived worker thread would be stopped when that thread finished.
    """
    global _SPAWNER
    if threading.current_thread() is threading.main_thread():
        start()
        return
    with _LOCK:
        if _SPAWNER is None:
            _SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perflab-services")
    _SPAWNER.submit(start).result()


def _new_token() -> str:
    # Letters only: see _ServerExecutor for why the marker must not contain digits.
    return "perflab-" + secrets.token_hex(16).translate(str.maketrans("0123456789", "ghijklmnop"))


def _same_process(pid: int, started: float) -> bool:
    """Return True if `pid` is alive and is the process that started at `started`, not a reuse."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - started) < 1.0
    except psutil.Error:
        return False


def _terminate(pid: int, sig: int) -> bool:
    """Stop a process gracefully, then by force; return False if we may not signal it."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    deadline = time.monotonic() + _REAP_TIMEOUT
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _read_records() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(state_dir("services", "running").glob("*.json")):
        record = _load_record(path)
        if record is None:
            path.unlink(missing_ok=True)  # unreadable: half-written by a killed process
        else:
            yield path, record


def _load_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("marker") != _MARKER:
        return None
    if not record.keys() >= _RECORD_KEYS:
        return None
    return record


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_bytes().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


# Registered after mirakuru's own atexit hook (imported above), so it runs first: servers get a
# graceful stop before mirakuru would SIGKILL anything.
atexit.register(stop_all)
