"""The shared process tools: a lock between processes, atomic JSON, pid liveness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from perflab.processes import file_lock, pid_alive, same_process, write_json_atomic

# Takes the lock, says when it got it, and holds it until told to go on.
HOLD_LOCK = """
import sys, time
from pathlib import Path
from perflab.processes import file_lock
with file_lock(Path(sys.argv[1])):
    print(time.time(), flush=True)
    sys.stdin.readline()
"""


def _holder(lock: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_file_lock_makes_a_second_process_wait_until_the_first_releases(tmp_path: Path) -> None:
    lock = tmp_path / "not" / "yet" / "there.lock"
    first = _holder(lock)
    second = None
    try:
        assert first.stdout is not None and first.stdout.readline()  # first holds it
        second = _holder(lock)
        time.sleep(1.0)  # time enough for the second to take the lock, were it free
        released = time.time()
        first.communicate("go\n", timeout=30)

        assert second.stdout is not None
        acquired = float(second.stdout.readline())
        second.communicate("go\n", timeout=30)
    finally:
        for child in (first, second):
            if child is not None:
                child.kill()
                child.wait()

    assert acquired >= released, "the second process took the lock while the first held it"
    assert first.returncode == 0 and second.returncode == 0
    if hasattr(os, "geteuid"):  # POSIX modes: the folders it made are private
        assert (tmp_path / "not").stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "not" / "yet").stat().st_mode & 0o777 == 0o700


def test_file_lock_can_be_taken_again_after_release(tmp_path: Path) -> None:
    lock = tmp_path / "again.lock"
    with file_lock(lock):
        pass
    with file_lock(lock):
        assert lock.exists()


def test_write_json_atomic_replaces_the_file_and_keeps_it_private(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    write_json_atomic(path, {"pid": 1})
    write_json_atomic(path, {"pid": 2, "name": "redis"})

    assert json.loads(path.read_text()) == {"pid": 2, "name": "redis"}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left
    if hasattr(os, "geteuid"):
        assert path.stat().st_mode & 0o777 == 0o600


def test_write_json_atomic_that_fails_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    write_json_atomic(path, {"pid": 1})

    with pytest.raises(TypeError):
        write_json_atomic(path, {"pid": object()})  # not JSON: fails halfway through

    assert json.loads(path.read_text()) == {"pid": 1}
    assert list(tmp_path.iterdir()) == [path]


def test_pid_alive_and_same_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    me = psutil.Process()

    assert pid_alive(os.getpid())
    assert not pid_alive(child.pid)
    assert same_process(me.pid, me.create_time())
    assert not same_process(me.pid, me.create_time() - 60)  # a recycled pid is not us
    assert not same_process(child.pid, 0.0)
