"""Bounded load tests with a real load generator: Locust, headless, in a subprocess.

``run_load(url, paths, users=..., duration_s=..., requests=...)`` runs ``locust --headless``
against a loopback URL (``perflab.locustfile``: users that request the paths in turn, without
pause), reads the statistics Locust saves as JSON when it stops, and returns a ``LoadResult``:
requests per second, latency percentiles, failures, and the load generator's own CPU use.
Locust runs in one process, so it can use one core: a generator near 100% of its core was
the bottleneck, not the server, and the result says so rather than passing its figure off as
the server's.

Locust's percentiles come from its histogram, which rounds response times above 100 ms to
the nearest 10 ms (above 1 s, to 100 ms).

The subprocess is tied to the kernel (parent-death signal) and bounded by its run time. Test
runs (``PERFLAB_QUICK=1``, set by nbval) shorten every run to ``QUICK_DURATION_S``, without
warm-up: their figures are not read; ``perflab notebooks`` keeps the full durations. Every run
lets the users' last requests finish (up to 5 s), so the server is left with no queue.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from perflab import accounts
from perflab.errors import PerflabError, ServiceUnavailable
from perflab.paths import runtime_dir

__all__ = [
    "QUICK_DURATION_S", "SATURATED", "LoadResult", "cpu_seconds", "failure_lines", "percentile",
    "run_load",
]

QUICK_DURATION_S = 1.0
#: A generator that used this share of its one core or more was the bottleneck.
SATURATED = 0.9
_LOCUSTFILE = Path(__file__).with_name("locustfile.py")


@dataclass(frozen=True)
class LoadResult:
    """What one load test measured."""

    label: str
    users: int
    duration_s: float
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    generator_cpu: float  # CPU seconds the generator used per second of the run (1.0 = a core)
    server_cpu: float | None = None  # the same for the server and its workers, when given
    #: Client connections each worker held midway through the run (a server lab.serve started).
    worker_connections: tuple[int, ...] | None = None
    #: Why requests failed: one line per distinct failure, with how often it happened.
    errors: tuple[str, ...] = ()

    @property
    def rps_per_core(self) -> float | None:
        """Return requests per second per core the server used: what capacity() starts from."""
        return self.rps / self.server_cpu if self.server_cpu else None

    @property
    def generator_saturated(self) -> bool:
        """Return True when the load generator, not the server, was the limit."""
        return self.generator_cpu >= SATURATED

    def summary(self) -> str:
        """Return one line: throughput, latencies, failures, and a saturated generator."""
        line = (
            f"{self.label}: {self.rps:,.0f} requests/s with {self.users} users "
            f"(p50 {self.p50_ms:,.0f} ms, p95 {self.p95_ms:,.0f} ms, p99 {self.p99_ms:,.0f} ms; "
            f"{self.requests:,} requests, {self.failures:,} failed, in {self.duration_s:.1f} s)"
        )
        if self.server_cpu is not None:
            line += f"; the server used {self.server_cpu:.2f} cores"
        if self.errors:
            line += f". Failures: {'; '.join(self.errors)}"
        if self.generator_saturated:
            line += (
                f". The load generator used {self.generator_cpu:.0%} of its core: it was the "
                "limit, so the server may do more than this"
            )
        return line

    def __str__(self) -> str:
        return self.summary()


def failure_lines(results: Iterable[LoadResult]) -> list[str]:
    """Return why requests failed in ``results``, one line per distinct failure: none if none."""
    return [f"{result.label}: {error}" for result in results for error in result.errors]


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if urlsplit(url).scheme != "http" or host not in ("127.0.0.1", "localhost", "::1"):
        raise PerflabError(
            f"run_load only loads a server on this machine (http://127.0.0.1:PORT), not {url!r}: "
            "a load test against someone else's server is an attack."
        )


def _quick() -> bool:
    return os.environ.get("PERFLAB_QUICK") == "1"


class Served(Protocol):
    """A running server ``run_load`` can load and watch (``perflab.web.WebServer``)."""

    url: str
    label: str

    def pids(self) -> list[int]: ...

    def connections(self) -> list[int]: ...


def run_load(
    target: str | Served,
    paths: list[str] | tuple[str, ...] = ("/",),
    *,
    users: int = 10,
    duration_s: float = 10.0,
    requests: int | None = None,
    warmup_s: float = 1.0,
    label: str | None = None,
    method: str = "GET",
    ids: Sequence[int] = (),
    secret: str | None = None,
    headers: Mapping[str, str] | None = None,
    strict: bool = False,
) -> LoadResult:
    """Run Locust headless against ``target`` and return what it measured.

    ``target`` is a server ``lab.serve`` started (then the CPU its processes use during the
    run is measured too) or a loopback URL. ``users`` clients request ``paths`` in turn,
    without pause, for ``duration_s`` seconds or until ``requests`` have been sent, whichever
    comes first, after ``warmup_s`` seconds of the same load that are not counted (fresh
    workers are slow on their first requests).

    For a webhook: ``method="POST"``; ``ids`` fill the ``{id}`` in a path, each once (warm-up
    included; the run ends early if they run out), and ``secret`` signs each path as the
    payment provider does.

    ``headers`` go with every request: a browser's ``If-None-Match``, say, to load the 304s
    that visitors with a current copy get.
    """
    url = target if isinstance(target, str) else target.url
    server_pids = None if isinstance(target, str) else target.pids
    server_connections = None if isinstance(target, str) else getattr(target, "connections", None)
    label = label or (url if isinstance(target, str) else target.label)
    _check_loopback(url)
    if users < 1 or duration_s <= 0 or (requests is not None and requests < 1):
        raise PerflabError(
            f"users and requests must be 1 or more and duration_s above 0 "
            f"(got users={users}, duration_s={duration_s}, requests={requests})."
        )
    if method not in ("GET", "POST"):
        raise PerflabError(f"method must be 'GET' or 'POST' (got {method!r}).")
    if any("{id}" in path for path in paths) != bool(ids):
        raise PerflabError("Give ids for a path with {id} in it (and only then).")
    if shutil.which("locust", path=str(Path(sys.executable).parent)) is None:
        raise ServiceUnavailable(
            "Locust is not installed in this Python: .venv/bin/pip install -r requirements.txt "
            "(or `make setup`), then restart the kernel."
        )
    if _quick():
        duration_s, warmup_s = min(duration_s, QUICK_DURATION_S), 0.0
    prefix, popen_kwargs = accounts.kill_with_parent(signal.SIGTERM, None, strict=strict)
    folder = Path(tempfile.mkdtemp(prefix="load-", dir=runtime_dir()))
    command = [
        *prefix, sys.executable, "-m", "locust", "-f", str(_LOCUSTFILE), "--headless",
        "--host", url.rstrip("/"), "--users", str(users), "--spawn-rate", str(users),
        "--run-time", f"{max(1, round(warmup_s + duration_s))}s",
        "--stop-timeout", "5",
        "--json-file", str(folder / "load"), "--only-summary", "--loglevel", "WARNING",
        "--skip-log-setup",
    ]
    env = {
        **os.environ,
        "PERFLAB_LOAD_PATHS": json.dumps(list(paths)),
        "PERFLAB_LOAD_REQUESTS": str(requests or 0),
        "PERFLAB_LOAD_WARMUP_S": str(max(0.0, warmup_s)),
        "PERFLAB_LOAD_MARK": str(folder / "measuring"),
        "PERFLAB_LOAD_METHOD": method,
        "PERFLAB_LOAD_IDS": json.dumps(list(ids)),
        "PERFLAB_LOAD_SECRET": secret or "",  # the environment: only this user can read it
        "PERFLAB_LOAD_HEADERS": json.dumps(dict(headers or {})),
        "PERFLAB_LOAD_ERRORS": str(folder / "errors.json"),
    }
    try:
        window: dict[str, Any] = {}

        def measuring_began() -> None:  # the warm-up is over: the window starts now
            window["server"] = cpu_seconds(server_pids()) if server_pids else {}
            window["generator"] = cpu_seconds([process.pid]).get(process.pid, 0.0)
            window["start"] = time.perf_counter()

        def midway() -> None:  # who holds the users' connections, once every user is in
            if server_connections is not None:
                window["connections"] = tuple(server_connections())

        started = time.perf_counter()
        with (folder / "locust.log").open("wb") as log:
            process = subprocess.Popen(
                command, env=env, cwd=folder, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, **popen_kwargs,
            )
        try:
            # wait4 returns the child's own CPU use; the deadline keeps a stuck run bounded.
            _, status, usage = _wait_with_deadline(
                process, warmup_s + duration_s + 60, folder / "measuring", measuring_began,
                midway=(duration_s / 2, midway),
            )
        except BaseException:
            process.kill()
            process.wait()
            raise
        ended = time.perf_counter()
        elapsed = ended - window.get("start", started)
        server_used = (
            _cpu_used(window["server"], server_pids()) if server_pids and window else None
        )
        returncode = os.waitstatus_to_exitcode(status)
        stats = folder / "load.json"  # Locust adds the suffix
        if not stats.exists():
            log_tail = (folder / "locust.log").read_text(errors="replace")[-2000:]
            raise PerflabError(
                f"Locust exited with code {returncode} and wrote no stats:\n{log_tail}"
            )
        return _result(
            stats, label=label, users=users, elapsed=elapsed,
            generator_cpu=(
                usage.ru_utime + usage.ru_stime - window.get("generator", 0.0)
            ) / elapsed,
            server_cpu=None if server_used is None else server_used / elapsed,
            worker_connections=window.get("connections"),
            errors=_errors(folder / "errors.json"),
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wait_with_deadline(
    process: subprocess.Popen[bytes], seconds: float, mark: Path, on_mark: Callable[[], None],
    *, midway: tuple[float, Callable[[], None]] | None = None,
) -> tuple[int, int, Any]:  # os.wait4's rusage (POSIX)
    deadline = time.monotonic() + seconds
    marked_at: float | None = None
    while True:
        if marked_at is None and mark.exists():
            marked_at = time.monotonic()
            on_mark()
        if midway and marked_at is not None and time.monotonic() - marked_at >= midway[0]:
            midway[1]()
            midway = None
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
            return pid, status, usage
        if time.monotonic() > deadline:
            raise PerflabError(f"Locust ran past its deadline ({seconds:.0f} s); it was stopped.")
        time.sleep(0.02)


def percentile(histogram: dict[float, int], share: float) -> float:
    """Return the response time below which ``share`` of the requests fell (Locust's way)."""
    total = sum(histogram.values())
    keep = int(total * share)
    counted = 0
    for response_time in sorted(histogram, reverse=True):
        counted += histogram[response_time]
        if total - counted <= keep:
            return response_time
    return 0.0


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """Return each live process's CPU seconds so far (user and system)."""
    import psutil

    seconds = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        seconds[pid] = times.user + times.system
    return seconds


def _cpu_used(before: dict[int, float], pids: list[int]) -> float:
    """Return the CPU seconds the processes used since ``before`` (a new one: all of its own)."""
    after = cpu_seconds(pids)
    return sum(now - before.get(pid, 0.0) for pid, now in after.items())


def _errors(path: Path) -> tuple[str, ...]:
    """Return Locust's failures of the measured window, one line each, the most frequent first."""
    if not path.exists():
        return ()
    entries = sorted(json.loads(path.read_text()), key=lambda entry: -entry["occurrences"])
    return tuple(
        f"{entry['occurrences']:,} x {entry['method']} {entry['name']}: {entry['error']}"
        for entry in entries
    )


def _result(
    stats: Path, *, label: str, users: int, elapsed: float, generator_cpu: float,
    server_cpu: float | None = None, worker_connections: tuple[int, ...] | None = None,
    errors: tuple[str, ...] = (),
) -> LoadResult:
    entries = json.loads(stats.read_text())
    count = sum(entry["num_requests"] for entry in entries)
    if not count:
        raise PerflabError(f"The load test sent no request: is the server at {label} up?")
    histogram: dict[float, int] = {}
    for entry in entries:
        for response_time, times in entry["response_times"].items():
            histogram[float(response_time)] = histogram.get(float(response_time), 0) + times
    first = min(entry["start_time"] for entry in entries)
    last = max(entry["last_request_timestamp"] or first for entry in entries)
    return LoadResult(
        label=label,
        users=users,
        duration_s=elapsed,
        requests=count,
        failures=sum(entry["num_failures"] for entry in entries),
        rps=count / (last - first) if last > first else 0.0,
        p50_ms=percentile(histogram, 0.50),
        p95_ms=percentile(histogram, 0.95),
        p99_ms=percentile(histogram, 0.99),
        generator_cpu=generator_cpu,
        server_cpu=server_cpu,
        worker_connections=worker_connections,
        errors=errors,
    )
