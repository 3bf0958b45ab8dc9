"""One PostgreSQL per user, shared by kernels: it outlives the kernel that started it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perflab import shared_postgres

ATTACH_AND_WAIT = """
import sys, time
from perflab import shared_postgres
server = shared_postgres.attach()
print(server.host, server.supervisor_pid, flush=True)
sys.stdin.readline()  # hold on until the test says go
"""


def _kernel(home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PERFLAB_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-c", ATTACH_AND_WAIT], env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )


def _wait_gone(pid: int, seconds: float = 20.0) -> bool:
    import psutil

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.services
def test_a_second_kernel_shares_the_server_and_it_outlives_the_first(tmp_path: Path) -> None:
    first, second = _kernel(tmp_path), _kernel(tmp_path)
    try:
        host_a, supervisor_a = first.stdout.readline().split()
        host_b, supervisor_b = second.stdout.readline().split()
        assert (host_a, supervisor_a) == (host_b, supervisor_b)  # one server, one supervisor

        first.communicate("go\n", timeout=30)  # the kernel that started it exits
        time.sleep(shared_postgres.GRACE_SECONDS + 1)
        import psycopg

        with psycopg.connect(host=host_b, port=5432, user="postgres",
                             dbname="postgres", connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)

        second.communicate("go\n", timeout=30)  # the last client goes: the server stops
        assert _wait_gone(int(supervisor_a))
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host=host_b, port=5432, user="postgres",
                            dbname="postgres", connect_timeout=2)
    finally:
        for kernel in (first, second):
            kernel.kill()


@pytest.mark.services
def test_a_killed_kernel_does_not_keep_the_server(tmp_path: Path) -> None:
    kernel = _kernel(tmp_path)
    try:
        _, supervisor = kernel.stdout.readline().split()
        kernel.kill()  # SIGKILL: no atexit, its client file stays behind
        kernel.wait(timeout=10)
        assert _wait_gone(int(supervisor))
    finally:
        kernel.kill()


def test_dead_clients_are_forgotten(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PERFLAB_HOME", str(tmp_path))
    clients = tmp_path / "services" / "shared-postgres" / "clients"
    clients.mkdir(parents=True)
    (clients / "999999999").write_text("12345.0")  # no such process
    (clients / str(os.getpid())).write_text(str(__import__("psutil").Process().create_time()))
    assert shared_postgres.live_clients() == [os.getpid()]
    assert not (clients / "999999999").exists()


@pytest.mark.services
def test_two_kernels_starting_at_once_get_one_server(tmp_path: Path) -> None:
    kernels = [_kernel(tmp_path) for _ in range(3)]  # all cold, all at the same moment
    try:
        answers = {kernel.stdout.readline().strip() for kernel in kernels}
        assert len(answers) == 1 and answers != {""}
        supervisor = int(answers.pop().split()[1])
    finally:
        for kernel in kernels:
            kernel.communicate("go\n", timeout=30)
    assert _wait_gone(supervisor)


class _FakeServer:
    stopped = False

    def stop(self) -> None:
        self.stopped = True


def test_the_supervisor_keeps_the_server_for_a_client_that_registered_late(
    monkeypatch, tmp_path: Path
) -> None:
    # The supervisor decides under the lock that attach() takes after registering, so a
    # kernel registering just as the grace period ends keeps its server.
    monkeypatch.setenv("PERFLAB_HOME", str(tmp_path))
    server = _FakeServer()
    shared_postgres._register(os.getpid())

    assert shared_postgres._stop_if_unused(server) is False
    assert not server.stopped

    shared_postgres._client_file(os.getpid()).unlink()
    assert shared_postgres._stop_if_unused(server) is True
    assert server.stopped


@pytest.mark.services
def test_stop_ends_the_shared_server_while_kernels_use_it(tmp_path: Path, monkeypatch) -> None:
    kernel = _kernel(tmp_path)
    try:
        host, supervisor = kernel.stdout.readline().split()
        monkeypatch.setenv("PERFLAB_HOME", str(tmp_path))

        assert shared_postgres.stop() == int(supervisor)

        assert _wait_gone(int(supervisor))
        assert not (Path(host) / ".s.PGSQL.5432").exists()
    finally:
        kernel.kill()
