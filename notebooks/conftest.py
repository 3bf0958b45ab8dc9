"""nbval's run of the lessons: each kernel starts its own servers and must fit Binder's memory.

Servers: unit tests run in this same pytest process. Before the first lesson, drop the
PostgreSQL labs they made and stop the servers they started themselves, so lessons meet only
what a learner's kernel would: the user's shared PostgreSQL (`perflab.shared_postgres`) and
servers of their own.

Scale: the committed outputs come from the `small` data. A checked cell that prints numbers
of the data itself (rows counted, pages, ids) is tagged `scale-dependent`: at another scale
(`PERFLAB_SCALE=default`) it still runs, and its asserts still hold, but its output is not
compared with the small run's. Every other checked cell must print the same at every scale.

Memory: the budget holds the whole tree, the kernel and every server, worker and subprocess it
starts (`perflab.footprint`, sampled from the lesson's first cell to its last). When a lesson's
last cell is torn down, nbval has also shut its kernel down and reaped it, so the kernel's exact
peak is in this process's RUSAGE_CHILDREN (the largest peak of any child so far, so the first
lesson to go over is the one that fails).

Timing: nothing here reads a timing (checked cells print counts, plans and shapes), so the
kernels run with PERFLAB_QUICK=1: a measurement times two rounds and an interleaved comparison
no more, and a load test runs one second (`perflab notebooks` and `perflab verify`, whose
timings are kept, use the full method). PERFLAB_QUICK=0 keeps the full method.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Generator
from typing import Any

import pytest

from perflab.footprint import Footprint
from perflab.notebooks import MEMORY_LIMIT_MB

# Kernels inherit this process's environment when nbval starts them.
os.environ.setdefault("PERFLAB_QUICK", "1")

_LAST_CELL = pytest.StashKey[bool]()
_footprints: dict[str, Footprint] = {}
_children_peak_before: dict[str, float] = {}
_peaks: dict[str, float] = {}
_servers_stopped = False


def stop_this_process_servers() -> None:
    """Drop this process's PostgreSQL labs and stop the servers it started (unit tests' ones)."""
    from perflab import kernel, services

    kernel.release()  # drops its PostgreSQL labs while the server still runs
    services.stop_all()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    global _servers_stopped
    if not _servers_stopped:
        _servers_stopped = True
        stop_this_process_servers()


def children_peak_mb() -> float:
    """Return the largest peak resident memory of any child process reaped so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


SCALE_DEPENDENT = "scale-dependent"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """At a scale other than small, don't compare the outputs of cells tagged scale-dependent."""
    if os.environ.get("PERFLAB_SCALE", "small") == "small":
        return
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is not None and SCALE_DEPENDENT in cell.get("metadata", {}).get("tags", []):
            item.options["check"] = False


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    item.stash[_LAST_CELL] = nextitem is None or nextitem.parent is not item.parent
    is_cell = getattr(item, "cell", None) is not None  # nbval's items; unit tests are not sampled
    if is_cell and item.parent is not None and item.parent.nodeid not in _footprints:
        _children_peak_before[item.parent.nodeid] = children_peak_mb()
        _footprints[item.parent.nodeid] = Footprint().start()  # the lesson's first cell


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[Any]:
    outcome = yield
    if call.when != "teardown" or not item.stash.get(_LAST_CELL, False):
        return
    limit = float(os.environ.get("PERFLAB_KERNEL_LIMIT_MB", MEMORY_LIMIT_MB))
    lesson = item.parent.nodeid if item.parent is not None else item.nodeid
    # The children's peak is the largest of every kernel reaped so far: it is this lesson's
    # kernel's own only if it rose while the lesson ran.
    kernel = children_peak_mb()
    own_kernel = kernel if kernel > _children_peak_before.get(lesson, 0.0) else None
    footprint = _footprints.get(lesson)
    tree = max(own_kernel or 0.0, footprint.stop() if footprint else 0.0)
    _peaks[lesson] = tree
    report = outcome.get_result()
    if tree >= limit and report.passed:
        kernel_part = f" (its kernel alone at {own_kernel:.0f} MB)" if own_kernel else ""
        report.outcome = "failed"
        report.longrepr = (
            f"{item.parent.name if item.parent else lesson}: the lesson peaked at {tree:.0f} MB "
            f"with the servers and workers it started{kernel_part}, over the {limit:.0f} MB "
            "budget (Binder gives 1-2 GB). Make the lesson lighter."
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """List each lesson's peak, so a lesson creeping towards the budget shows before it fails."""
    if not _peaks:
        return
    limit = float(os.environ.get("PERFLAB_KERNEL_LIMIT_MB", MEMORY_LIMIT_MB))
    scale = os.environ.get("PERFLAB_SCALE", "small")
    terminalreporter.write_sep("-", f"memory at {scale}: peak of each lesson's process tree")
    for lesson, peak in _peaks.items():
        terminalreporter.write_line(f"{peak:6.0f} MB of {limit:.0f}  {lesson}")
