"""The memory a lesson really takes: its kernel and every process it started, while it runs.

Binder's 1 GB holds the whole process tree, not the kernel alone: the memcached, Redis and
PostgreSQL servers a lesson starts, its Celery workers and web servers, the pytest it runs in a
subprocess. ``Footprint`` samples, in a thread, every descendant of this process (the kernel
and whatever it started) plus the servers perflab's records list for this user (the shared
PostgreSQL is not the kernel's child: it outlives it), and keeps the largest total it saw.

Each process counts its resident size, read from the cheap counters (``/proc/PID/statm``), not
from a walk of its memory map: reading ``smaps`` takes the process's memory lock and would slow
the very code a lesson measures. A page shared by several processes (PostgreSQL's shared
buffers) counts once per process, so the total errs high, on the safe side. A sample every
half second can miss a shorter spike; the kernel's own exact peak (``getrusage``) is checked
beside it. Sampling costs a little CPU: lesson runs that time things (``perflab notebooks``,
``perflab verify``) don't sample; ``make test`` does.
"""

from __future__ import annotations

import threading
from types import TracebackType

import psutil

__all__ = ["Footprint", "tree_mb"]

_MB = 1024 * 1024


def _service_pids() -> list[int]:
    """Return the pids perflab's records name, touching nothing (a sampler only looks)."""
    from perflab import processes

    pids = []
    try:
        for path in processes.records_dir().glob("*.json"):
            record = processes.load_record(path)
            if record is not None and "pid" in record:
                pids.append(int(record["pid"]))
    except OSError:
        return []
    return pids


def _memory(process: psutil.Process) -> int:
    return int(process.memory_info().rss)


def tree_mb(root: psutil.Process | None = None) -> float:
    """Return the MB held by ``root``'s descendants (not ``root`` itself) and the user's servers."""
    root = root or psutil.Process()
    seen: dict[int, psutil.Process] = {}
    try:
        for child in root.children(recursive=True):
            seen[child.pid] = child
    except psutil.NoSuchProcess:
        pass
    for pid in _service_pids():
        try:
            server = psutil.Process(pid)
            seen[pid] = server
            for child in server.children(recursive=True):
                seen[child.pid] = child
        except psutil.NoSuchProcess:
            continue
    total = 0
    for process in seen.values():
        try:
            total += _memory(process)
        except psutil.NoSuchProcess:
            continue
    return total / _MB


class Footprint:
    """Sample the memory of this process's descendants and its user's servers; keep the peak.

    ``with Footprint() as footprint: ...`` then ``footprint.peak_mb``.
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="perflab-footprint", daemon=True)

    def _run(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, tree_mb())
            if self._stop.wait(self.interval):
                return

    def start(self) -> Footprint:
        self._thread.start()
        return self

    def stop(self) -> float:
        """Stop sampling; return the peak in MB."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.peak_mb

    def __enter__(self) -> Footprint:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
