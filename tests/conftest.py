"""Shared fixtures: every test run gets its own perflab state folder and a tiny lab."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Tests must never touch a learner's real templates, lab copies or servers. Set before any
# perflab import so every module (and every kernel nbval starts) sees the same folder.
_OWN_HOME = "PERFLAB_HOME" not in os.environ
os.environ.setdefault("PERFLAB_HOME", tempfile.mkdtemp(prefix="perflab-tests-"))


@pytest.fixture(autouse=True)
def full_timing_method(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test perflab's timing as learners get it: notebooks/conftest.py sets PERFLAB_QUICK for
    the lessons' kernels, and is loaded (when pytest collects the notebooks) before these run."""
    monkeypatch.delenv("PERFLAB_QUICK", raising=False)


@pytest.fixture(scope="session", autouse=True)
def remove_what_the_tests_left_in_the_temp_dir(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Remove, after the run, the temp-dir folders the tests' state roots point to.

    A state root with a long path (pytest's tmp_path) keeps its sockets in a randomly named
    folder in the temp dir, and root's PostgreSQL lives in one too; pytest removes the roots,
    not those. Only folders a test root names are removed, never a learner's own.
    """
    yield
    home = Path(os.environ["PERFLAB_HOME"])
    from perflab import services, shared_postgres

    shared_postgres.stop()  # the lessons' shared server may still be in its grace period
    services.stop_recorded()
    for root in (tmp_path_factory.getbasetemp(), home):
        for pointer in [*root.rglob("run-dir"), *root.rglob("postgres-home")]:
            with contextlib.suppress(OSError):
                folder = Path(pointer.read_text().strip())
                if folder.parent == Path(tempfile.gettempdir()) and folder.name.startswith(
                    "perflab-"
                ):
                    shutil.rmtree(folder, ignore_errors=True)
    if _OWN_HOME:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def gone() -> Callable[..., bool]:
    """Return a waiter: gone(pids) is True once none of them runs (zombies count as gone)."""
    import time

    import psutil

    def wait(pids: list[int], timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = []
            for pid in pids:
                try:
                    if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                        alive.append(pid)
                except psutil.NoSuchProcess:
                    pass
            if not alive:
                return True
            time.sleep(0.05)
        return False

    return wait


@pytest.fixture
def kernel_child() -> Iterator[Callable[[str], tuple[Any, list[int]]]]:
    """Return start(code): run ``code`` as a kernel would, in a child; (child, pids it printed).

    The code starts servers and prints their pids on one line; the test then kills the child.
    """
    import subprocess
    import sys

    children: list[subprocess.Popen[str]] = []

    def start(code: str) -> tuple[subprocess.Popen[str], list[int]]:
        child = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        children.append(child)
        assert child.stdout is not None and child.stderr is not None
        line = child.stdout.readline()
        assert line, child.stderr.read()
        return child, [int(pid) for pid in line.split()]

    yield start
    for child in children:
        child.kill()
        child.communicate()


@pytest.fixture(scope="session")
def lab():
    """Return a lab at the tiny scale; tests that change rows must undo it or call reset()."""
    from perflab import setup

    return setup(scale="tiny", quiet=True)


@pytest.fixture(scope="module")
def scratch_table(lab) -> Iterator[Callable[..., Any]]:
    """Yield ``make(name, columns_sql, rows)``: a raw table on the lab's connection, for tests
    of the measuring tools that want queries unrelated to the shop. Dropped after the module."""
    from django.db import connections

    conn = connections["default"]
    made: list[str] = []

    def make(name: str, columns_sql: str, rows: list[tuple[Any, ...]]) -> Any:
        marks = ", ".join(["%s"] * len(rows[0]))
        with conn.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
            cursor.execute(f"CREATE TABLE {name} ({columns_sql})")
            cursor.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
        made.append(name)
        return conn

    yield make
    with conn.cursor() as cursor:
        for name in made:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def killed_kernel(gone: Callable[..., bool]) -> Callable[[str], tuple[int, Path]]:
    """Return a runner: killed_kernel("lab.replica()") starts that server from a kernel-like
    process on a tiny PostgreSQL lab, SIGKILLs the process, checks the server died with it, and
    returns the server's pid and folder (what a sweep must clean up)."""
    import signal
    import subprocess
    import sys
    import textwrap

    repo = Path(__file__).resolve().parents[1]

    def run(start: str) -> tuple[int, Path]:
        script = textwrap.dedent(f"""
            import time
            import perflab
            lab = perflab.setup(database="postgres", scale="tiny", quiet=True)
            server = {start}
            print(server.pid, server.run_dir, flush=True)
            time.sleep(600)
        """)
        kernel = subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
            cwd=repo / "demo_project", env={**os.environ, "PERFLAB_STRICT": "1"},
        )
        try:
            assert kernel.stdout is not None
            pid, folder = kernel.stdout.readline().split()
            os.kill(kernel.pid, signal.SIGKILL)
            kernel.wait(timeout=30)
            assert gone([int(pid)], timeout=30)  # the parent-death signal stopped it
            return int(pid), Path(folder)
        finally:
            if kernel.poll() is None:
                kernel.kill()

    return run
