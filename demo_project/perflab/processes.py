"""Keep track of the processes perflab starts: records, locks, liveness, reaping.

Every server start writes a small JSON record (owner pid, server pid, start times) and marks the
server's environment, so any later process of the same user can tell a live server from a
leftover: ``reap_orphans()`` stops servers whose owner is gone, ``find_orphans()`` lets CI check
for leftovers, ``stop_recorded()`` clears everything up. A pid alone is not trusted: pids are
recycled, so a record names a process by pid *and* start time (``same_process``).

Also the small process-level tools the rest of perflab shares: an exclusive lock between
processes (``file_lock``, on the ``filelock`` package: flock on POSIX, msvcrt on Windows), an
atomic private JSON write, pid liveness, a graceful-then-forceful stop and a log's tail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import psutil
from filelock import FileLock

from perflab.paths import runtime_dir, state_dir

__all__ = [
    "REAP_TIMEOUT",
    "RECORD_MARKER",
    "file_lock",
    "find_orphans",
    "load_record",
    "marker_environment",
    "pid_alive",
    "read_records",
    "reap_orphans",
    "records_dir",
    "remove_run_dir",
    "running_services",
    "same_process",
    "stop_recorded",
    "tail",
    "terminate",
    "write_json_atomic",
    "write_record",
]

#: Every record says this, so a stray JSON file in the records folder is never taken for one.
RECORD_MARKER = "perflab-service"
#: Seconds a process gets to stop after its stop signal before it is killed.
REAP_TIMEOUT = 10.0
_RECORD_KEYS = {"token", "name", "pid", "pid_started", "owner_pid", "owner_started", "stop_signal"}
# Folders perflab before sockets made per start, named by port: always leftovers now.
_LEGACY_RUN_DIR = re.compile(r"(memcached|redis)-\d+")


# --- Small shared tools --------------------------------------------------------------------------


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` while the block runs, waiting for any other holder.

    Works between processes (and threads): two kernels building the same template, or starting
    the same server, take turns. Missing parent folders are created 0700; the lock file is 0600.
    """
    _make_private_folders(path.parent)
    with FileLock(path, mode=0o600):
        yield


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` (0600): readers see the old file or the new, never half.

    A temporary file next to it is written, then renamed over it (``os.replace``).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def pid_alive(pid: int) -> bool:
    """Return True if a process with this pid exists (any user's), not counting zombies."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.AccessDenied:
        return True  # it exists, it is just not ours to look at
    except psutil.Error:
        return False


def same_process(pid: int, started: float) -> bool:
    """Return True if `pid` is alive and is the process that started at `started`, not a reuse."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - started) < 1.0
    except psutil.Error:
        return False


def terminate(pid: int, sig: int) -> bool:
    """Stop a process gracefully, then by force; return False if we may not signal it."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    deadline = time.monotonic() + REAP_TIMEOUT
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
    return True


def tail(path: Path, lines: int = 20) -> str:
    """Return the last lines of a log, or say that there is none (for error messages)."""
    try:
        text = path.read_bytes().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


# --- Records of running servers ------------------------------------------------------------------


def records_dir() -> Path:
    """Return the folder of this user's server records (one JSON file per running server)."""
    return state_dir("services", "running")


def marker_environment(name: str, token: str, record: Path) -> dict[str, str]:
    """Return the variables that mark a server's process, so find_orphans() can tell it ours."""
    return {
        "PERFLAB_SERVICE": name,
        "PERFLAB_SERVICE_TOKEN": token,
        "PERFLAB_SERVICE_OWNER": str(os.getpid()),
        "PERFLAB_SERVICE_RECORD": str(record),
    }


def write_record(path: Path, *, pid: int, owner_pid: int, **fields: Any) -> None:
    """Record a started server: ``fields`` plus both processes' start times.

    ``fields`` must hold token, name and stop_signal; address, run_dir and user are usual.
    Raises psutil.NoSuchProcess if the server (or its owner) already exited.
    """
    record = {
        "marker": RECORD_MARKER,
        **fields,
        "pid": pid,
        "pid_started": psutil.Process(pid).create_time(),
        "owner_pid": owner_pid,
        "owner_started": psutil.Process(owner_pid).create_time(),
        "started_at": time.time(),
    }
    write_json_atomic(path, record)


def read_records() -> Iterator[tuple[Path, dict[str, Any]]]:
    """Yield (path, record) for every record; delete files that are not whole records."""
    for path in sorted(records_dir().glob("*.json")):
        record = load_record(path)
        if record is None:
            path.unlink(missing_ok=True)  # unreadable: half-written by a killed process
        else:
            yield path, record


def load_record(path: Path) -> dict[str, Any] | None:
    """Return the record in ``path``, or None if it is missing or not a perflab record."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("marker") != RECORD_MARKER:
        return None
    if not record.keys() >= _RECORD_KEYS:
        return None
    return record


def remove_run_dir(record: dict[str, Any]) -> None:
    """Remove a stopped server's run folder, if it is one of ours in the runtime folder."""
    folder = Path(str(record.get("run_dir", "")))
    if folder.name and folder.parent == runtime_dir():
        shutil.rmtree(folder, ignore_errors=True)


def stop_recorded() -> list[int]:
    """Stop every server this user's processes started, whoever owns it; return their pids.

    For ``python -m perflab services stop-all``: a learner clearing up after kernels that are
    still running (or hung) without hunting for pids.
    """
    stopped = []
    for path, record in read_records():
        pid = record["pid"]
        if same_process(pid, record["pid_started"]) and terminate(pid, record["stop_signal"]):
            stopped.append(pid)
        path.unlink(missing_ok=True)
        remove_run_dir(record)
    return stopped


def running_services() -> list[dict[str, Any]]:
    """Return the records of servers still running for this user, dropping those that died."""
    result = []
    for path, record in read_records():
        if not same_process(record["pid"], record["pid_started"]):
            path.unlink(missing_ok=True)
            remove_run_dir(record)
            continue
        record["owner_alive"] = same_process(record["owner_pid"], record["owner_started"])
        result.append(record)
    return result


def reap_orphans(names: Iterable[str], *, stray_after: float) -> list[int]:
    """Stop servers whose owning process died without stopping them; return their pids.

    Also removes the run folders such servers left behind, and those of starts that never
    finished: a folder ``<name>-<token>`` (``name`` one of ``names``) no record names, once it
    is ``stray_after`` seconds old (younger, it may be a start under way in another kernel).
    """
    reaped = []
    for path, record in read_records():
        if same_process(record["owner_pid"], record["owner_started"]):
            continue
        pid = record["pid"]
        if same_process(pid, record["pid_started"]):
            if not terminate(pid, record["stop_signal"]):
                continue  # not ours to signal; find_orphans() will keep reporting it
            reaped.append(pid)
        path.unlink(missing_ok=True)
        remove_run_dir(record)
    _remove_stray_run_dirs(names, stray_after)
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
        record = load_record(Path(env.get("PERFLAB_SERVICE_RECORD", "")))
        if (
            record is None
            or record.get("token") != env.get("PERFLAB_SERVICE_TOKEN")
            or not same_process(record["owner_pid"], record["owner_started"])
        ):
            orphans.append(proc.pid)
    return orphans


def _remove_stray_run_dirs(names: Iterable[str], stray_after: float) -> None:
    """Remove run folders no record names (a start killed mid-way), once they are old enough."""
    for old in state_dir("services").iterdir():
        if _LEGACY_RUN_DIR.fullmatch(old.name):
            shutil.rmtree(old, ignore_errors=True)
    pattern = re.compile(rf"({'|'.join(map(re.escape, names))})-[a-p]{{8}}")
    named = {str(record.get("run_dir")) for _, record in read_records()}
    now = time.time()
    for folder in runtime_dir().iterdir():
        if not pattern.fullmatch(folder.name):
            continue
        with contextlib.suppress(OSError):
            if str(folder) not in named and now - folder.stat().st_mtime > stray_after:
                shutil.rmtree(folder, ignore_errors=True)


def _make_private_folders(folder: Path) -> None:
    """Create ``folder`` and any missing parents, each 0700 (mkdir's parents= uses the umask)."""
    missing = []
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    for part in reversed(missing):
        with contextlib.suppress(FileExistsError):
            part.mkdir(mode=0o700)
