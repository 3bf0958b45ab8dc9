"""Time the same standalone script under CPython and PyPy, in subprocesses: lesson 16.

A JIT pays off only after it has watched the code run, so one figure per interpreter would hide
the point: every run here reports the time of each of its calls (JSON on stdout), and a race
keeps them all, so the first call and the warmed-up calls are set side by side, next to each
process's start-up time and peak memory (its maximum resident set, which a small launcher
reads with ``wait4``).
Interpreters take turns, round by round, as ``compare(..., interleave=True)`` does in-process,
so a machine that slows down meanwhile slows both. The runs become ``Measurement`` objects and
a ``Comparison``: ``perflab verify`` checks their ratios like any other.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from perflab import charts
from perflab.compare import TOLERANCE, Comparison, compare
from perflab.errors import PerflabError
from perflab.measure import QUICK_REPEAT, Measurement, quick

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Interpreter", "Interpreters", "Race", "Run", "find_pypy", "pypy_status"]

PYPY_ENV = "PERFLAB_PYPY"
PYPY_INSTALL = (
    "Install: sudo apt install pypy3 (Debian/Ubuntu), brew install pypy3 (macOS) or "
    "conda create -n pypy -c conda-forge pypy; or point PERFLAB_PYPY at a pypy3 binary."
)
_PROBE = (
    "import json, platform, sys; print(json.dumps([platform.python_implementation(), "
    "platform.python_version(), sys.version.split()[0]]))"
)
#: ru_maxrss is in KiB on Linux and in bytes on macOS.
_RSS_UNIT = 1 if sys.platform == "darwin" else 1024


@dataclass(frozen=True)
class Interpreter:
    """Hold one Python interpreter a race can run: its label, binary and language version."""

    label: str
    executable: str
    implementation: str
    python_version: str

    @property
    def version_tuple(self) -> tuple[int, ...]:
        """Return the language version as numbers, e.g. (3, 9, 16), to compare with a spec."""
        return tuple(int(part) for part in self.python_version.split(".")[:3] if part.isdigit())


def find_pypy() -> str | None:
    """Return the PyPy binary to use: ``PERFLAB_PYPY``, else ``pypy3`` or ``pypy`` on PATH."""
    chosen = os.environ.get(PYPY_ENV)
    if chosen:
        return shutil.which(chosen) or (chosen if os.path.isfile(chosen) else None)
    return shutil.which("pypy3") or shutil.which("pypy")


def probe(executable: str, label: str) -> Interpreter:
    """Ask ``executable`` what it is: a binary named pypy3 that turns out to be CPython is not."""
    try:
        done = subprocess.run([executable, "-c", _PROBE], capture_output=True, text=True,
                              timeout=60, check=True)
        implementation, version, _ = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise PerflabError(f"{executable} does not run as a Python interpreter: {exc}") from exc
    return Interpreter(label, executable, implementation, version)


def pypy_status() -> tuple[bool, str]:
    """Return whether PyPy is here and runs, so ``%%requires pypy3`` skips cells that need it."""
    found = find_pypy()
    if found is None:
        where = f"{PYPY_ENV}={os.environ[PYPY_ENV]} is not a file" if os.environ.get(
            PYPY_ENV) else "no pypy3 or pypy on PATH"
        return False, f"PyPy is not installed ({where}). {PYPY_INSTALL}"
    try:
        interpreter = probe(found, "PyPy")
    except PerflabError as exc:
        return False, f"{exc}. {PYPY_INSTALL}"
    if interpreter.implementation != "PyPy":
        return False, f"{found} is {interpreter.implementation}, not PyPy. {PYPY_INSTALL}"
    return True, ""


@dataclass(frozen=True)
class Run:
    """Hold one subprocess's figures: each call's ms, its answer, its wall time and peak memory."""

    interpreter: str
    times_ms: list[float]
    answer: Any
    wall_ms: float
    peak_bytes: int | None


#: Run a command in a grandchild and report its wall time and peak memory on stderr's last line.
#: Why a grandchild: Linux carries a process's peak RSS across exec, so a child started straight
#: from this (large) kernel would report the kernel's memory; a fork of this small launcher
#: starts from the launcher's few MiB, below any interpreter's own.
_LAUNCHER = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
wall_ms = (time.perf_counter() - started) * 1000
sys.stderr.write("\\nperflab-run %d %.3f\\n" % (usage.ru_maxrss, wall_ms))
sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""


def run_script(interpreter: Interpreter, args: list[str], *, timeout: float = 300) -> Run:
    """Run ``interpreter`` on ``args`` once; read the JSON it prints (``times_ms``, ``answer``).

    Its wall time and peak memory come from a small launcher that forks it and reads its
    resource usage; without ``fork`` (Windows) the wall time is taken here and memory is unknown.
    """
    command = [interpreter.executable, *args]
    if hasattr(os, "fork"):
        command = [sys.executable, "-I", "-S", "-c", _LAUNCHER, *command]
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors,
                                   start_new_session=True)
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the launcher and the interpreter it forked
            process.communicate()
            raise PerflabError(f"{interpreter.label} ran past {timeout:.0f} s on {args}") from None
        wall_ms, peak = (time.perf_counter() - started) * 1000, None
        errors.seek(0)
        lines = errors.read().decode(errors="replace").strip().splitlines()
    if lines and lines[-1].startswith("perflab-run "):
        rss, wall = lines.pop().split()[1:]
        peak, wall_ms = int(rss) * _RSS_UNIT, float(wall)
    if process.returncode:
        raise PerflabError(f"{interpreter.label} exited with {process.returncode} on {args}:\n"
                           + "\n".join(lines[-5:]))
    try:
        data = json.loads(out) if out.strip() else {}
    except ValueError as exc:
        raise PerflabError(
            f"{interpreter.label} printed no JSON on {args}: {out[:200]!r}") from exc
    return Run(interpreter.label, list(data.get("times_ms", [])), data.get("answer"), wall_ms,
               peak)


@dataclass
class Race:
    """Hold the runs of one script under several interpreters, round by round."""

    title: str
    calls: int
    runs: dict[str, list[Run]] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """Return the interpreters' labels, in the order they ran."""
        return list(self.runs)

    def answers_equal(self) -> bool:
        """Return whether every run of every interpreter gave the same answer."""
        answers = [run.answer for runs in self.runs.values() for run in runs]
        return all(answer == answers[0] for answer in answers)

    def answer(self, label: str | None = None) -> Any:
        """Return the answer of ``label``'s first run (default: the first interpreter's)."""
        return self.runs[label or self.labels[0]][0].answer

    def per_call_ms(self, label: str) -> list[float]:
        """Return the median over rounds of each call's ms: call 1 first, the warm-up curve."""
        return [statistics.median(run.times_ms[i] for run in self.runs[label])
                for i in range(self.calls)]

    def measurement(self, label: str, *, first_call: bool = False) -> Measurement:
        """Return ``label``'s first calls, or its warmed-up calls (each run's later half).

        The first call and the rest are kept apart because a JIT makes them differ. The peak
        memory is the largest of its processes' resident sets.
        """
        runs = self.runs[label]
        later = self.calls // 2
        times = [run.times_ms[0] for run in runs] if first_call else [
            t for run in runs for t in run.times_ms[later:]]
        name = f"{label}, first call" if first_call else (
            f"{label}, warmed up" if self.calls > 1 else label)
        return Measurement(name, times_ms=times, repeat=len(times),
                           peak_bytes=_largest(run.peak_bytes for run in runs))

    def measurements(self) -> list[Measurement]:
        """Return the first interpreter warmed up (the baseline), then each other's first call
        and warmed-up calls."""
        first, *others = self.labels
        chosen = [self.measurement(first)]
        for label in others:
            if self.calls > 1:
                chosen.append(self.measurement(label, first_call=True))
            chosen.append(self.measurement(label))
        return chosen

    def whole_runs(self) -> list[Measurement]:
        """Return each interpreter's process wall time: start, load, warm-up and every call.

        That is what a one-off script costs, where a warmed-up call is not what anyone waits for.
        """
        return [
            Measurement(f"{label}, whole process", times_ms=[run.wall_ms for run in runs],
                        repeat=len(runs), peak_bytes=_largest(run.peak_bytes for run in runs))
            for label, runs in self.runs.items()
        ]

    def compare(self, *, chart: bool = True, tolerance: float = TOLERANCE) -> Comparison:
        """Return the table (and bar chart) of ``measurements()``: ratios ``verify`` checks."""
        return compare(*self.measurements(), title=self.title, chart=chart, tolerance=tolerance)

    def warmup_chart(self, *, show: bool = True) -> Figure:
        """Return each call's time per interpreter: a JIT's curve falls, CPython's stays flat."""
        figure = charts.scaling_chart(
            list(range(1, self.calls + 1)),
            {label: self.per_call_ms(label) for label in self.labels},
            xlabel="call number, in one process", ylabel="ms per call (median of rounds)",
            title=self.title,
        )
        figure.axes[0].set_ylim(bottom=0)
        if show:
            charts.show(figure)
        return figure

    def __repr__(self) -> str:
        rounds = len(next(iter(self.runs.values()), []))
        return f"<Race {self.title!r}: {', '.join(self.labels)}; {rounds} rounds>"


def _largest(sizes: Iterable[int | None]) -> int | None:
    known = [size for size in sizes if size is not None]
    return max(known) if known else None


class Interpreters:
    """Mix into ``perflab.lab.Lab`` the methods of lesson 16: run scripts under other Pythons."""

    def interpreters(self) -> list[Interpreter]:
        """Return this kernel's CPython and, when installed and working, PyPy."""
        found = [probe(sys.executable, "CPython")]
        if pypy_status()[0]:
            found.append(probe(find_pypy() or "pypy3", "PyPy"))
        return found

    def race(self, *args: str | int | os.PathLike[str], calls: int, rounds: int = 3,
             title: str, interpreters: list[Interpreter] | None = None) -> Race:
        """Run ``args`` (a script and its arguments) under each interpreter, ``rounds`` times.

        The interpreters take turns, so a busy moment slows them alike; each run is a fresh
        process, which warms up from nothing. The script prints ``{"times_ms": [...],
        "answer": ...}`` with ``calls`` times in it. A test run (``PERFLAB_QUICK=1``) runs two
        rounds.
        """
        chosen = interpreters if interpreters is not None else self.interpreters()
        argv = [os.fspath(arg) if isinstance(arg, os.PathLike) else str(arg) for arg in args]
        if quick():
            rounds = min(rounds, QUICK_REPEAT)
        race = Race(title, calls, {interpreter.label: [] for interpreter in chosen})
        for _ in range(rounds):
            for interpreter in chosen:
                run = run_script(interpreter, argv)
                if len(run.times_ms) != calls:
                    raise PerflabError(f"{interpreter.label} reported {len(run.times_ms)} "
                                       f"calls, not {calls}: check the script's output.")
                race.runs[interpreter.label].append(run)
        return race

    def start_up(self, *, rounds: int = 10,
                 interpreters: list[Interpreter] | None = None) -> Comparison:
        """Return each interpreter's time to start and exit (``-c pass``) and its peak memory."""
        chosen = interpreters if interpreters is not None else self.interpreters()
        if quick():
            rounds = min(rounds, QUICK_REPEAT)
        walls: dict[str, list[float]] = {i.label: [] for i in chosen}
        peaks: dict[str, list[int]] = {i.label: [] for i in chosen}
        for _ in range(rounds):
            for interpreter in chosen:
                run = run_script(interpreter, ["-c", "pass"])
                walls[interpreter.label].append(run.wall_ms)
                if run.peak_bytes is not None:
                    peaks[interpreter.label].append(run.peak_bytes)
        measured = [
            Measurement(f"{label}: start, exit", times_ms=walls[label], repeat=rounds,
                        peak_bytes=max(peaks[label]) if peaks[label] else None)
            for label in walls
        ]
        return compare(*measured, title="Start an interpreter and exit (python -c pass)")
