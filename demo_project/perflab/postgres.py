"""Run PostgreSQL for a learner, and talk to it: cluster, access rules, server, client.

The server is found wherever it is installed (PATH, pg_config, Debian's and Homebrew's
folders), gets a data folder of its own (initdb once, kept between kernels), listens on no TCP
port, only on a socket in a 0700 folder, and lets in only the learner's OS user (peer
authentication) as the role ``postgres``. PostgreSQL refuses to run as root, so as root it runs
as the ``postgres`` account, in a folder that account can enter.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import psutil

from perflab import processes
from perflab.accounts import account_named, as_user, current_user, is_root
from perflab.errors import ServiceUnavailable
from perflab.paths import remembered_temp_dir, state_dir
from perflab.service_base import Service, live_services

if TYPE_CHECKING:
    import psycopg

    from perflab.accounts import Account

__all__ = [
    "APP_ROLE",
    "BINDIR_GLOBS",
    "POSTGRES_PORT",
    "PostgresClient",
    "PostgresService",
    "find_bindir",
    "postgres_home",
    "refresh_access_rules",
]

#: PostgreSQL listens on no TCP port; the number only names its socket file (.s.PGSQL.5432).
POSTGRES_PORT = 5432
#: An ordinary (not superuser) role the learner may also log in as: limits such as a database's
#: CONNECTION LIMIT apply to it, as to a real application's role (superusers are exempt).
APP_ROLE = "perflab_app"
#: Where packaged PostgreSQL servers live when they are not on PATH (Debian, RHEL, Homebrew).
BINDIR_GLOBS: tuple[str, ...] = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
)
_NO_POSTGRES_USER = (
    "PostgreSQL refuses to run as root, and there is no 'postgres' user to run it as. "
    "Create one (sudo useradd --system --create-home postgres) or run Jupyter as a normal user."
)


def postgres_home() -> Path:
    """Return this user's PostgreSQL folder (data, log), which the server user can enter.

    As a normal user it sits in the state root. As root, PostgreSQL must run as the ``postgres``
    user, who can't enter root's home: it gets a folder of its own in the temp directory, with a
    random name (another user can't create it first) that root's state root remembers.
    """
    if not is_root():
        return state_dir("services", "postgres")
    account = account_named("postgres")
    if account is None:
        raise ServiceUnavailable(_NO_POSTGRES_USER)
    return remembered_temp_dir(
        state_dir("services") / "postgres-home",
        prefix="perflab-pg-",
        owner=(account.pw_uid, account.pw_gid),
    )


def find_bindir() -> Path | None:
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
    packaged = [Path(p) for pattern in BINDIR_GLOBS for p in glob.glob(pattern)]
    candidates += sorted(packaged, key=_version_key, reverse=True)
    for folder in candidates:
        if all(os.access(folder / exe, os.X_OK) for exe in ("postgres", "initdb")):
            return folder
    return None


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


def refresh_access_rules(server: PostgresClient) -> None:
    """Rewrite the running server's access rules as this perflab writes them, and reload them.

    A server started by an older perflab keeps the rules it started with (without a mapping
    added since, such as ``APP_ROLE``'s); a reload applies the new ones without a restart.
    """
    service = PostgresService()
    service._write_access_rules(service._run_as())
    with server.connect() as conn:
        conn.execute("SELECT pg_reload_conf()")


class PostgresService(PostgresClient, Service):
    """Run PostgreSQL tuned for a lab (no fsync), with data kept between kernels.

    It listens on no TCP port (``listen_addresses=''``), only on a socket in a 0700 folder, and
    accepts only this OS user (peer authentication), as the role ``postgres``.
    """

    name = "postgres"
    binary = "postgres"
    packages = ("postgresql", "postgresql@17", "postgresql")
    searched = "PATH, pg_config or the usual install folders"
    stop_signal = signal.SIGINT  # "fast shutdown": roll back open transactions and exit

    def __init__(self, *, strict: bool = False) -> None:
        self.home = postgres_home()
        self.data_dir = self.home / "data"
        super().__init__(strict=strict)
        if is_root():
            # The server runs as postgres, who can't enter root's runtime folder.
            self.run_dir = self.home / "run"
        self.log_path = self.home / "postgres.log"
        self.host = str(self.run_dir)
        self.port = POSTGRES_PORT

    @classmethod
    def find_binary(cls) -> str | None:
        bindir = find_bindir()
        return str(bindir / "postgres") if bindir else None

    @classmethod
    def available(cls) -> bool:
        if is_root() and account_named("postgres") is None:
            return False
        return super().available()

    @classmethod
    def already_running(cls) -> PostgresService | None:
        """Return this process's PostgreSQL if it runs, or raise if another process runs one."""
        data = postgres_home() / "data"
        live = _live_postmaster(data)
        if live is None:
            return None
        pid, _ = live
        for svc in live_services():
            if isinstance(svc, PostgresService) and svc.pid == pid:
                return svc
        owners = [r["owner_pid"] for _, r in processes.read_records() if r["pid"] == pid]
        owner = f"process {owners[0]}" if owners else "a process perflab does not know"
        raise ServiceUnavailable(
            f"A PostgreSQL server (pid {pid}) is already running on {data}, started by {owner}. "
            f"Only one perflab PostgreSQL runs per user: shut down the other notebook's kernel, "
            f"or stop it with `python3 -m perflab services stop-all`, then try again."
        )

    @property
    def socket_path(self) -> Path:
        """Return the socket file PostgreSQL makes in its folder."""
        return self.run_dir / f".s.PGSQL.{self.port}"

    @property
    def address(self) -> str:
        """Return the folder holding the socket, as libpq's ``host`` takes it."""
        return self.host

    def _run_as(self) -> Account | None:
        if not is_root():
            return None
        account = account_named("postgres")
        if account is None:
            raise ServiceUnavailable(_NO_POSTGRES_USER)
        return account

    def _cwd(self) -> Path:
        return self.home  # the server user can't enter root's state folder

    def _prepare(self) -> None:
        account = self._run_as()
        bindir = find_bindir()
        if bindir is None:
            raise ServiceUnavailable(self.missing_binary_message())
        self._ensure_cluster(bindir, account)
        self._write_access_rules(account)
        self._clear_stale_pidfile()
        # No server runs here (start_service checked): a killed one's socket lock is stale.
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(mode=0o700)
        if account is not None:
            os.chown(self.run_dir, account.pw_uid, account.pw_gid)

    #: What line 8 of postmaster.pid says once the server takes connections.
    _READY_STATES: tuple[str, ...] = ("ready",)

    def _settings(self) -> list[str]:
        """Return the server's ``-c`` settings; a replica adds its own."""
        return [
            "listen_addresses=",  # no TCP: the socket in a 0700 folder is the only way in
            "unix_socket_permissions=0700",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
        ]

    def _command(self) -> list[str]:
        bindir = find_bindir()
        assert bindir is not None
        command = [str(bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        command += ["-k", str(self.run_dir)]
        for setting in self._settings():
            command += ["-c", setting]
        return command

    def _ready(self) -> bool:
        # Accepting connections is not enough: during startup PostgreSQL answers "starting up".
        # Line 8 of postmaster.pid says "ready" once it takes connections (PostgreSQL 10+).
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() in self._READY_STATES

    def _ensure_cluster(self, bindir: Path, account: Account | None) -> None:
        """Create the data folder with initdb unless a usable one is already there."""
        version_file = self.data_dir / "PG_VERSION"
        if version_file.exists():
            if version_file.read_text().strip() == _postgres_major(bindir):
                return
            # Made by another PostgreSQL version (or half-made): lab data, so rebuild it.
            shutil.rmtree(self.data_dir)
        elif self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        prefix, popen_kwargs = as_user(account)
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

    def _write_access_rules(self, account: Account | None) -> None:
        """Let in this OS user alone, over the socket, as the role postgres; nothing over TCP.

        Written at every start, so a data folder made by an older perflab (trust on TCP) is
        locked down too.
        """
        me = current_user()
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
                # The application role too (lesson 19), also for PgBouncer run as postgres.
                + f"perflab {me} {APP_ROLE}\n"
                + (f"perflab {account.pw_name} {APP_ROLE}\n" if account else "")
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
        deadline = time.monotonic() + processes.REAP_TIMEOUT
        while _processes_in(self.data_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
        # PostgreSQL ignores a stale file itself, unless its pid now belongs to another process
        # (common in containers); removing it avoids that false "already running".
        pidfile.unlink(missing_ok=True)


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


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(path)))


def _postgres_major(bindir: Path) -> str:
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    return match.group(1) if match else ""
