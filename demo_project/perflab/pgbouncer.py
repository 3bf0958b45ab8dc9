"""Run PgBouncer for a learner: a connection pooler in front of their PostgreSQL, socket only.

A lesson about database connections measures a real pooler. PgBouncer listens on no TCP port
(``listen_addr`` empty), only on a socket in a 0700 folder, and lets in one client: the
learner's OS user, by ``peer`` authentication on that socket (the kernel tells it who is
calling; there is no password to leak or to guess). Its admin console (the ``pgbouncer``
database) is that user's alone too. Behind it, it reaches the learner's PostgreSQL over its
socket as the role ``postgres``, which the server lets in by peer authentication as well.

PgBouncer refuses to run as root: as root it runs as the ``postgres`` account, in a folder of
that account's (``perflab.postgres.postgres_home``), as the replica does. It is a
``perflab.service_base.Service``: recorded, launched with a parent-death signal, stopped and its
folder removed at exit, reaped (with a killed kernel's folder) by the next start.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perflab import replica
from perflab.accounts import account_named, current_user, is_root
from perflab.errors import PerflabError, ServiceUnavailable, UnknownChoice
from perflab.postgres import PostgresClient, postgres_home
from perflab.service_base import Service

if TYPE_CHECKING:
    from perflab.accounts import Account

__all__ = ["FOLDER", "PGBOUNCER_PORT", "POOL_MODES", "PgBouncerService", "pgbouncer_settings"]

#: The number only names the socket file (.s.PGSQL.6432): PgBouncer listens on no TCP port.
PGBOUNCER_PORT = 6432
POOL_MODES = ("session", "transaction", "statement")
#: The name of a PgBouncer run folder, for the stray-folder clean-up after a killed kernel.
FOLDER = re.compile(r"pgbouncer-[a-p]{8}")
#: Where Debian and Ubuntu put it (/usr/sbin is not on every user's PATH).
_SEARCHED = ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer")


class PgBouncerService(PostgresClient, Service):
    """Run PgBouncer in ``pool_mode`` with ``pool_size`` server connections per database.

    Clients connect as the learner's OS user (peer); every database name is passed through to
    ``upstream`` (the learner's PostgreSQL), where PgBouncer logs in as ``postgres``.
    """

    name = "pgbouncer"
    binary = "pgbouncer"
    packages = ("pgbouncer", "pgbouncer", "pgbouncer")
    searched = "PATH or /usr/sbin"
    stop_signal = signal.SIGINT  # "safe shutdown": let clients finish, then exit

    def __init__(
        self, upstream: PostgresClient, *, pool_mode: str = "transaction", pool_size: int = 5,
        max_client_conn: int = 100, strict: bool = False,
    ) -> None:
        if pool_mode not in POOL_MODES:
            raise UnknownChoice("pool mode", pool_mode, POOL_MODES)
        if pool_size < 1 or max_client_conn < 1:
            raise PerflabError(f"pool_size and max_client_conn must be 1 or more "
                               f"(got {pool_size}, {max_client_conn}).")
        super().__init__(strict=strict)
        if is_root():
            # It runs as postgres, who can't enter root's runtime folder.
            self.run_dir = postgres_home() / f"{self.name}-{self._token[-8:]}"
            self.log_path = self.run_dir / f"{self.name}.log"
        self.upstream = upstream
        self.pool_mode = pool_mode
        self.pool_size = int(pool_size)
        self.max_client_conn = int(max_client_conn)
        self.host = str(self.run_dir)
        self.port = PGBOUNCER_PORT
        self.user = current_user()  # peer authentication: the client's OS user, by name
        #: Django's DATABASES entry through this PgBouncer, and {"DATABASES": ...} to serve with
        #: (``lab.pgbouncer`` fills both in for the lab's database).
        self.database: dict[str, Any] = {}
        self.settings: dict[str, Any] = {}

    @classmethod
    def find_binary(cls) -> str | None:
        found = shutil.which(cls.binary)
        if found:
            return found
        return next((path for path in _SEARCHED if os.access(path, os.X_OK)), None)

    @classmethod
    def available(cls) -> bool:
        if is_root() and account_named("postgres") is None:
            return False
        return super().available()

    @property
    def socket_path(self) -> Path:
        """Return the socket PgBouncer makes in its folder, named as libpq expects."""
        return self.run_dir / f".s.PGSQL.{self.port}"

    @property
    def address(self) -> str:
        """Return the folder holding the socket, as libpq's ``host`` takes it."""
        return self.host

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return (f"<PgBouncerService {self.pool_mode} mode, pool of {self.pool_size} "
                f"at {self.host} {state}>")

    def django_settings(self, database_settings: dict[str, Any]) -> dict[str, Any]:
        """Return Django's DATABASES entry for ``database_settings``' database through PgBouncer."""
        return pgbouncer_settings(self, database_settings)

    def show(self, what: str = "pools") -> list[dict[str, Any]]:
        """Return the rows of the admin console's ``SHOW <what>`` (pools, clients, servers...)."""
        import psycopg
        from psycopg.rows import dict_row

        if not re.fullmatch(r"[a-z_]+", what):
            raise PerflabError(f"SHOW takes one word, like 'pools' (got {what!r}).")
        # The console speaks the simple query protocol only, and knows no transactions.
        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="pgbouncer",
                             autocommit=True, connect_timeout=10) as conn:
            cursor = psycopg.ClientCursor(conn, row_factory=dict_row)
            cursor.execute(f"SHOW {what.upper()}")
            return list(cursor.fetchall())

    # --- the Service hooks ------------------------------------------------------------------------

    def _run_as(self) -> Account | None:
        if not is_root():
            return None
        account = account_named("postgres")
        if account is None:
            raise ServiceUnavailable(
                "PgBouncer refuses to run as root, and there is no 'postgres' user to run it as."
            )
        return account

    def _prepare(self) -> None:
        account = self._run_as()
        files = {
            "pgbouncer.ini": self._config(),
            # peer: the kernel names the OS user at the other end of the socket. Only the
            # learner, under their own name, gets in; anyone else is rejected.
            "hba.conf": f"local all {self.user} peer\nlocal all all reject\n",
            # PgBouncer knows only the users listed here; peer needs no password, so none is set.
            "users.txt": f'"{self.user}" ""\n',
        }
        for name, text in files.items():
            path = self.run_dir / name
            path.write_text(text)
            path.chmod(0o600)
            if account is not None:
                os.chown(path, account.pw_uid, account.pw_gid)
        if account is not None:
            os.chown(self.run_dir, account.pw_uid, account.pw_gid)

    def _config(self) -> str:
        folder = self.run_dir
        return "\n".join([
            "[databases]",
            # Every database name passes through to the same name on the learner's server.
            f"* = host={self.upstream.host} port={self.upstream.port} user={self.upstream.user}",
            "",
            "[pgbouncer]",
            "listen_addr =",  # no TCP: the socket in a 0700 folder is the only way in
            f"listen_port = {self.port}",
            f"unix_socket_dir = {folder}",
            "unix_socket_mode = 0700",
            "auth_type = hba",
            f"auth_hba_file = {folder / 'hba.conf'}",
            f"auth_file = {folder / 'users.txt'}",
            f"admin_users = {self.user}",
            f"stats_users = {self.user}",
            f"pool_mode = {self.pool_mode}",
            f"default_pool_size = {self.pool_size}",
            "min_pool_size = 0",
            "reserve_pool_size = 0",
            f"max_client_conn = {self.max_client_conn}",
            "server_login_retry = 1",
            "query_wait_timeout = 30",
            # psycopg and Django may send these; PgBouncer would refuse an unknown parameter.
            "ignore_startup_parameters = extra_float_digits,options",
            "logfile =",  # its log goes to stderr, which the Service keeps in the run folder
            "",
        ])

    def _command(self) -> list[str]:
        return [self.require_binary(), str(self.run_dir / "pgbouncer.ini")]

    def _cwd(self) -> Path:
        return self.run_dir


def pgbouncer_settings(
    server: PgBouncerService, database_settings: dict[str, Any]
) -> dict[str, Any]:
    """Return Django's DATABASES entry for the same database, through ``server``.

    The learner's OS user name (PgBouncer's peer check), PgBouncer's socket folder, and what
    transaction pooling needs: no server-side cursors (``.iterator()`` would open a cursor in one
    server connection and fetch from another), no persistent connections beyond the pooler's.
    """
    db = {key: value for key, value in database_settings.items() if key != "TEST"}
    db["HOST"], db["PORT"], db["USER"] = server.host, str(server.port), server.user
    db["OPTIONS"] = {key: value for key, value in database_settings.get("OPTIONS", {}).items()
                     if key != "pool"}
    if server.pool_mode == "transaction":
        db["DISABLE_SERVER_SIDE_CURSORS"] = True
    return db


def remove_stray_folders() -> None:
    """Remove the run folders of PgBouncers whose kernel was killed, in postgres's folder.

    As root they live there, where the reaper of the runtime folder does not look; a normal
    user's are in the runtime folder, and ``perflab.processes`` removes them.
    """
    with contextlib.suppress(ServiceUnavailable, OSError):
        if is_root():
            replica.remove_stray_folders(postgres_home(), pattern=FOLDER)
