"""One PostgreSQL per user, shared by every kernel that needs it, stopped when the last one goes.

A learner keeps lesson 03's kernel running while opening lesson 04; both need PostgreSQL, and
only one server can own the user's data folder. So no kernel owns it: a small supervisor
process does. Kernels register as clients (a file named after their pid); the supervisor starts
the server through `services.start_service` (so the server dies with the supervisor, whatever
kills it) and stops it once no registered client has been alive for a moment. A kernel killed
with SIGKILL leaves its file behind, but a dead pid does not count as a client. Attaching and
stopping are decided under one lock (``processes.file_lock``), so no kernel is handed a server
that is about to stop.

Run as ``python -m perflab.shared_postgres``: the supervisor's entry point.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from perflab import services
from perflab.errors import ServiceUnavailable
from perflab.paths import state_dir
from perflab.postgres import PostgresClient
from perflab.processes import file_lock, same_process, tail, write_json_atomic

__all__ = ["SharedPostgres", "attach", "live_clients", "stop", "supervise"]

#: How long the supervisor keeps the server after its last client went, in seconds.
GRACE_SECONDS = 2.0
#: How long a kernel waits for a new supervisor to report the server ready (initdb included).
READY_TIMEOUT = 120.0
_POLL = 0.25


class SharedPostgres(PostgresClient):
    """Return a handle on the user's shared PostgreSQL: where it listens, and its databases."""

    name = "postgres"

    def __init__(self, record: dict[str, object]) -> None:
        self.host = str(record["host"])
        self.port = int(record["port"])  # type: ignore[call-overload]
        self.supervisor_pid = int(record["supervisor_pid"])  # type: ignore[call-overload]
        self._supervisor_started = float(record["supervisor_started"])  # type: ignore[arg-type]

    @property
    def running(self) -> bool:
        """Return True while the supervisor (and so the server it guards) is alive."""
        return same_process(self.supervisor_pid, self._supervisor_started)

    def __repr__(self) -> str:
        return f"<SharedPostgres supervisor={self.supervisor_pid}>"


def _folder() -> Path:
    return state_dir("services", "shared-postgres")


def _record_path() -> Path:
    return _folder() / "supervisor.json"


def _lock() -> contextlib.AbstractContextManager[None]:
    return file_lock(_folder() / "lock")


def _client_file(pid: int) -> Path:
    return state_dir("services", "shared-postgres", "clients") / str(pid)


def _register(pid: int) -> None:
    path = _client_file(pid)
    path.write_text(str(psutil.Process(pid).create_time()))
    atexit.register(path.unlink, missing_ok=True)


def live_clients() -> list[int]:
    """Return the pids of registered clients still alive; forget the dead ones."""
    alive = []
    for path in state_dir("services", "shared-postgres", "clients").iterdir():
        try:
            pid, started = int(path.name), float(path.read_text() or 0)
        except (OSError, ValueError):
            continue
        if same_process(pid, started):
            alive.append(pid)
        else:
            path.unlink(missing_ok=True)
    return alive


def _live_record() -> dict[str, object] | None:
    try:
        record = json.loads(_record_path().read_text())
    except (OSError, ValueError):
        return None
    if same_process(record["supervisor_pid"], record["supervisor_started"]):
        return record
    return None


def attach() -> SharedPostgres:
    """Register this process as a client and return the shared server, starting it if needed.

    Raises ServiceUnavailable with the install line when PostgreSQL is missing, and with the
    supervisor's log when the server could not start.
    """
    if not services.service_available("postgres"):
        raise ServiceUnavailable(services.missing_binary_message("postgres"))
    _register(os.getpid())
    with _lock():
        record = _live_record()
        if record is None or not record.get("ready"):
            record = _start_supervisor()
    return SharedPostgres(record)


def _start_supervisor() -> dict[str, object]:
    _record_path().unlink(missing_ok=True)
    log = _folder() / "supervisor.log"
    with log.open("wb") as out:
        # A session of its own: the supervisor serves other kernels too, so it must outlive
        # this one. It stops the server when no client is left.
        process = subprocess.Popen(
            [sys.executable, "-m", "perflab.shared_postgres"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=os.environ.copy(),
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        record = _live_record()
        if record is not None and record.get("ready"):
            return record
        if process.poll() is not None:
            raise ServiceUnavailable(
                f"PostgreSQL could not start. Last lines of {log}:\n{tail(log)}"
            )
        time.sleep(_POLL)
    process.kill()
    raise ServiceUnavailable(f"PostgreSQL did not start within {READY_TIMEOUT:.0f} s; see {log}.")


def supervise() -> int:
    """Start the server, keep it while clients live, stop it after the last one; the exit code."""
    me = psutil.Process()
    record: dict[str, object] = {
        "supervisor_pid": me.pid,
        "supervisor_started": me.create_time(),
        "ready": False,
    }
    write_json_atomic(_record_path(), record)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server = services.start_service("postgres")
    except ServiceUnavailable as exc:
        print(exc, flush=True)
        _record_path().unlink(missing_ok=True)
        return 1
    record.update(host=server.host, port=server.port, server_pid=server.pid, ready=True)
    write_json_atomic(_record_path(), record)
    print(f"PostgreSQL ready (pid {server.pid})", flush=True)
    last_seen = time.monotonic()
    try:
        while not stopping and server.running:
            if live_clients():
                last_seen = time.monotonic()
            elif time.monotonic() - last_seen > GRACE_SECONDS and _stop_if_unused(server):
                break
            time.sleep(_POLL)
    finally:
        # Stopped by a signal or by the server's own death: same clean-up, under the lock.
        with _lock():
            _record_path().unlink(missing_ok=True)
            server.stop()
    return 0


def _stop_if_unused(server: services.Service) -> bool:
    """Stop the server unless a client registered meanwhile; return True if it stopped.

    Decided under the lock that ``attach`` takes after registering: a kernel attaching now is
    either seen here as a client, or waits and then starts a new supervisor; it never gets a
    server that is about to stop.
    """
    with _lock():
        if live_clients():
            return False
        _record_path().unlink(missing_ok=True)
        server.stop()
    print("No client left: PostgreSQL stopped.", flush=True)
    return True


def stop() -> int | None:
    """Stop this user's shared PostgreSQL now, clients or not; return the supervisor's pid."""
    record = _live_record()
    if record is None:
        return None
    pid = int(record["supervisor_pid"])  # type: ignore[call-overload]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # it stops the server, then exits
    deadline = time.monotonic() + READY_TIMEOUT
    while _live_record() is not None and time.monotonic() < deadline:
        time.sleep(_POLL)
    return pid


if __name__ == "__main__":
    sys.exit(supervise())
