"""Run a streaming replica of the learner's PostgreSQL, and point Django at it as another alias.

A lesson about read replicas measures a real one: ``pg_basebackup -R`` copies the learner's
shared PostgreSQL (the whole cluster, as every physical replica does) into a folder of the
kernel's own, and a second ``postgres`` starts on it as a hot standby that streams the primary's
WAL and answers read-only queries. Like the primary it listens on no TCP port, only on a socket
in a 0700 folder, lets in only the learner (peer authentication), and runs as the ``postgres``
account when the kernel is root. The primary takes replication connections from the learner
alone (``perflab.postgres`` writes ``local replication ... peer``). It is a
``perflab.service_base.Service``: recorded, launched with a parent-death signal, stopped and its
folder removed when the kernel exits, reaped after a killed one.

``recovery_min_apply_delay`` makes a *delayed* replica, whose lag a lesson can rely on: it
applies each commit that many milliseconds after the primary made it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perflab import processes
from perflab.accounts import as_user, is_root
from perflab.errors import ServiceUnavailable
from perflab.paths import runtime_dir
from perflab.postgres import (
    POSTGRES_PORT,
    PostgresClient,
    PostgresService,
    find_bindir,
    postgres_home,
)
from perflab.service_base import Service

if TYPE_CHECKING:
    from perflab.accounts import Account

__all__ = [
    "REPLICA_SETTINGS",
    "ReplicaService",
    "add_alias",
    "drop_stray_slots",
    "remove_stray_folders",
    "replica_settings",
]

#: The standby's own settings: small memory (the primary holds the lab's working set too).
#: max_connections and the other limits a hot standby needs stay at the primary's defaults.
REPLICA_SETTINGS = (
    "listen_addresses=",  # no TCP: the socket in a 0700 folder is the only way in
    "unix_socket_permissions=0700",
    "fsync=off",
    "shared_buffers=16MB",
    "hot_standby=on",
    "wal_receiver_status_interval=1s",  # the primary's pg_stat_replication stays current
)
#: Seconds a base backup may take (the whole cluster: every lab copy and template on it).
BACKUP_TIMEOUT = 600.0
#: Seconds a replica may take to replay what the primary committed before it was asked.
CATCH_UP_TIMEOUT = 120.0
#: A replica folder no record names, and no process works in, is left over after this long
#: (younger, it may be a start under way: the record is written once the server is up).
STRAY_AFTER = 30.0
_FOLDER = re.compile(r"replica-[a-p]{8}")


class ReplicaService(PostgresService):
    """Run a hot standby of ``primary``: base backup, then WAL streamed and replayed.

    ``delay_ms`` delays each commit's replay (``recovery_min_apply_delay``); ``label`` names it
    in the primary's ``pg_stat_replication`` (with this start's token, so kernels never mix).
    """

    name = "replica"
    binary = "pg_basebackup"

    def __init__(
        self, primary: PostgresClient, *, delay_ms: int = 0, label: str = "replica",
        strict: bool = False,
    ) -> None:
        # Not PostgresService's __init__: the folders it sets are the primary's.
        Service.__init__(self, strict=strict)
        self.primary = primary
        self.delay_ms = int(delay_ms)
        self.application_name = f"perflab_{label}_{self._token[-8:]}"
        #: The primary keeps the WAL this replica has not received yet in this slot, so a burst
        #: of writes (a database copied from a template) and a checkpoint can't remove it first.
        self.slot_name = f"perflab_replica_{self._token[-8:]}"
        self.home = postgres_home()
        if is_root():
            # The server runs as postgres, who can't enter root's runtime folder.
            self.run_dir = self.home / f"{self.name}-{self._token[-8:]}"
        self.data_dir = self.run_dir / "data"
        self.log_path = self.run_dir / f"{self.name}.log"
        self.host = str(self.run_dir)
        self.port = POSTGRES_PORT
        self.backup_seconds = 0.0
        self.backup_bytes = 0

    @classmethod
    def find_binary(cls) -> str | None:
        bindir = find_bindir()
        if bindir is None or not os.access(bindir / "pg_basebackup", os.X_OK):
            return None
        return str(bindir / "pg_basebackup")

    @classmethod
    def already_running(cls) -> None:
        return None  # each replica is a kernel's own: never another's to reuse

    def _cwd(self) -> Path:
        return self.run_dir

    def _prepare(self) -> None:
        account = self._run_as()
        bindir = find_bindir()
        if bindir is None or self.find_binary() is None:
            raise ServiceUnavailable(self.missing_binary_message())
        remove_stray_folders(self.run_dir.parent)
        drop_stray_slots(self.primary, self.run_dir.parent)
        if account is not None:
            os.chown(self.run_dir, account.pw_uid, account.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():  # restart() keeps its data
            self._base_backup(bindir, account)
        self._write_access_rules(account)
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)

    def _base_backup(self, bindir: Path, account: Account | None) -> None:
        """Copy the primary with pg_basebackup -R: its files, the WAL to replay, standby.signal."""
        prefix, popen_kwargs = as_user(account)
        command = [
            *prefix,
            str(bindir / "pg_basebackup"),
            *("-h", self.primary.host, "-p", str(self.primary.port), "-U", self.primary.user),
            *("-D", str(self.data_dir)),
            "-R",  # write primary_conninfo and standby.signal: start as the primary's standby
            *("-C", "-S", self.slot_name),  # and primary_slot_name, for a slot made now
            *("-X", "stream", "--checkpoint=fast", "--no-sync"),
        ]
        started = time.perf_counter()
        result = subprocess.run(
            command, cwd=self.run_dir, capture_output=True, text=True, timeout=BACKUP_TIMEOUT,
            check=False, **popen_kwargs,
        )
        self.backup_seconds = time.perf_counter() - started
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise ServiceUnavailable(
                f"pg_basebackup could not copy the primary (exit code {result.returncode}):\n"
                f"{output}"
            )
        self.backup_bytes = _folder_bytes(self.data_dir)

    # A hot standby says "standby" on line 8 of postmaster.pid once it takes connections.
    _READY_STATES = ("standby", "ready")

    def _settings(self) -> list[str]:
        return [
            *REPLICA_SETTINGS,
            f"cluster_name={self.application_name}",  # its application_name on the primary
            f"recovery_min_apply_delay={self.delay_ms}ms",
        ]

    def stop(self) -> None:
        """Stop the replica, remove its folder, and drop its slot so the primary keeps no WAL."""
        super().stop()
        _drop_slot(self.primary, self.slot_name)

    # --- what a lesson asks a running replica -----------------------------------------------------

    def replay_lsn(self) -> str:
        """Return the last WAL position this replica replayed (``pg_last_wal_replay_lsn``)."""
        with self.connect() as conn:
            row = conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
        return str(row[0]) if row else "0/0"

    def status(self) -> dict[str, Any]:
        """Return how the primary sees this replica (``pg_stat_replication``), or {} if unseen."""
        with self.primary.connect() as conn:
            cursor = conn.execute(
                "SELECT state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn),"
                " replay_lag FROM pg_stat_replication WHERE application_name = %s",
                (self.application_name,),
            )
            row = cursor.fetchone()
        if row is None:
            return {}
        state, sync_state, behind, lag = row
        return {"state": state, "sync_state": sync_state, "bytes_behind": int(behind or 0),
                "replay_lag": lag}

    def catch_up(self, timeout: float = CATCH_UP_TIMEOUT) -> float:
        """Wait until this replica has replayed every commit the primary made before the call.

        Returns the seconds it took. A delayed replica takes its delay. Raises ServiceUnavailable
        if it did not catch up within ``timeout`` (its log says why).
        """
        started = time.monotonic()
        target = self._commit_on_primary()
        nudged = started
        while True:
            with self.connect() as conn:
                row = conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), %s::pg_lsn) >= 0",
                    (target,),
                ).fetchone()
            if row and row[0]:
                return time.monotonic() - started
            now = time.monotonic()
            if now - started > timeout:
                raise ServiceUnavailable(
                    f"The replica did not catch up within {timeout:.0f} s. The end of its log:\n"
                    f"{processes.tail(self.log_path)}"
                )
            if now - nudged > 1.0 + self.delay_ms / 1000:
                # The last record may end on a page boundary or be waiting for a flush: another
                # commit moves the replica past it.
                self._commit_on_primary()
                nudged = now
            time.sleep(0.01)

    def _commit_on_primary(self) -> str:
        """Commit a transaction on the primary, flushed at once; return the WAL flushed so far."""
        with self.primary.connect() as conn:
            conn.execute("SET synchronous_commit = on")  # the lab's primary commits lazily
            # A transaction that writes WAL (an empty logical message), so its commit flushes
            # everything before it; a transaction that only took an id would commit lazily.
            conn.execute("SELECT pg_logical_emit_message(true, 'perflab', 'catch up')")
            row = conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
        return str(row[0]) if row else "0/0"


def replica_settings(server: ReplicaService, primary_settings: dict[str, Any]) -> dict[str, Any]:
    """Return Django's DATABASES entry for the lab's database on ``server``.

    The same database name as the primary's entry (a physical replica holds every database of
    the cluster), the replica's socket, and ``TEST["MIRROR"]`` as Django's docs advise: in tests
    the alias reads the test database through the primary's connection.
    """
    db = {key: value for key, value in primary_settings.items() if key not in ("TEST",)}
    db["HOST"], db["PORT"] = server.host, str(server.port)
    db["OPTIONS"] = dict(primary_settings.get("OPTIONS", {}))
    db["TEST"] = {"MIRROR": "default"}
    return db


def add_alias(alias: str, db: dict[str, Any]) -> None:
    """Add ``alias`` to Django's DATABASES beside the ones there, keeping their connections."""
    from django.conf import settings
    from django.db import connections

    settings.DATABASES = {**settings.DATABASES, alias: db}
    # ConnectionHandler caches its settings; the next lookup reads the new ones. Open
    # connections of other aliases stay as they are; one left on this alias is closed.
    connections._settings = None
    connections.__dict__.pop("settings", None)
    with contextlib.suppress(AttributeError):
        getattr(connections._connections, alias).close()
        delattr(connections._connections, alias)


def remove_stray_folders(
    parent: Path | None = None, *, older_than: float = STRAY_AFTER,
    pattern: re.Pattern[str] = _FOLDER,
) -> None:
    """Remove replica folders that no record names and no process works in: killed kernels'.

    A kernel killed outright (nbval stops kernels with SIGKILL) stops its replica through the
    parent-death signal but never removes its copy of the cluster. ``parent`` defaults to where
    replicas live: root's PostgreSQL folder as root, the runtime folder otherwise. ``pattern``
    names the folders to look at (another server kept in the same place: PgBouncer's).
    """
    if parent is None:
        parent = postgres_home() if is_root() else runtime_dir()
    if not parent.is_dir():
        return
    named = {str(record.get("run_dir")) for _, record in processes.read_records()}
    now = time.time()
    candidates = []
    for folder in parent.iterdir():
        with contextlib.suppress(OSError):
            if (pattern.fullmatch(folder.name) and str(folder) not in named
                    and now - folder.stat().st_mtime > older_than):
                candidates.append(folder)
    if not candidates:
        return
    busy = _working_folders()
    for folder in candidates:
        if not any(path == folder or folder in path.parents for path in busy):
            shutil.rmtree(folder, ignore_errors=True)


def drop_stray_slots(primary: PostgresClient, parent: Path) -> None:
    """Drop the replication slots of replicas that are gone (their folder removed).

    A killed kernel's replica leaves its slot on the primary, which would keep WAL for it
    forever. A slot in use, or whose replica's folder is still there, is left alone.
    """
    with contextlib.suppress(Exception), primary.connect() as conn:
        rows = conn.execute(
            "SELECT slot_name FROM pg_replication_slots"
            " WHERE slot_name LIKE 'perflab\\_replica\\_%' AND NOT active"
        ).fetchall()
        for (slot,) in rows:
            if not (parent / f"replica-{slot.rsplit('_', 1)[-1]}").exists():
                _drop_slot(primary, slot)


def _drop_slot(primary: PostgresClient, slot: str, timeout: float = 10.0) -> None:
    """Drop ``slot`` once no walsender uses it (a replica just stopped lets go within moments)."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(Exception), primary.connect() as conn:
        while True:
            row = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            if row is None:
                return
            if not row[0]:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                return
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)


def _working_folders() -> list[Path]:
    """Return the working folders of running processes (pg_basebackup's, a postmaster's)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cwd"]):
        if proc.info["cwd"]:
            found.append(Path(proc.info["cwd"]))
    return found


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).lstat().st_size
    return total
