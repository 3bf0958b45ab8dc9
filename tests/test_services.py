"""Start real servers, talk to them, and prove none outlives the process that started it."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest

from perflab import accounts, postgres, services
from perflab.errors import ServiceUnavailable, UnknownChoice
from perflab.paths import runtime_dir

pytestmark = pytest.mark.services

IS_ROOT = os.geteuid() == 0

# A child Python that starts one server, reports its pid, then waits to be killed or just exits.
CHILD = """
import sys, time
from perflab import accounts, services
if sys.argv[2] == "no-guard":
    accounts.setpriv = lambda: None  # as on macOS: no parent-death signal, only the reaper
if sys.argv[3] == "exit":  # keep the folder at the atexit stop, so the test can read the log
    stop = services.Service._stop
    services.Service._stop = lambda svc, keep_folder: stop(svc, keep_folder=True)
svc = services.start_service(sys.argv[1], strict=False)
print(svc.pid, svc.log_path, flush=True)
if sys.argv[3] == "wait":
    time.sleep(120)
"""


def _installed(name: str) -> pytest.MarkDecorator:
    # Under PERFLAB_STRICT=1 (CI) a missing server fails the run instead of skipping.
    missing = not services.service_available(name) and not services.is_strict()
    return pytest.mark.skipif(missing, reason=f"{name} is not installed")


needs_memcached = _installed("memcached")
needs_redis = _installed("redis")
needs_postgres = _installed("postgres")


@pytest.fixture(autouse=True)
def perflab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "perflab"
    monkeypatch.setenv("PERFLAB_HOME", str(home))
    monkeypatch.delenv("PERFLAB_STRICT", raising=False)
    yield home
    services.stop_all()
    services.reap_orphans()  # servers left by a child this test killed


@pytest.fixture(scope="module")
def shared_pg_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # One PostgreSQL data folder for the whole module: initdb once, not once per test.
    home = tmp_path_factory.mktemp("perflab-pg")
    yield home
    if IS_ROOT:  # root's data folder lives in the temp folder, outside PERFLAB_HOME
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PERFLAB_HOME", str(home))
            shutil.rmtree(services.postgres_home(), ignore_errors=True)


@pytest.fixture
def pg_home(shared_pg_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERFLAB_HOME", str(shared_pg_home))
    return shared_pg_home


def _gone(pid: int, *, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True  # dead, waiting for init to reap it
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def _start_in_child(
    name: str, *, guard: bool = True, then: str = "wait"
) -> tuple[subprocess.Popen[str], int]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, name, "guard" if guard else "no-guard", then],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    line = child.stdout.readline()
    if not line:
        child.wait()
        pytest.fail(f"child could not start {name}:\n{child.stderr.read()}")
    return child, int(line.split()[0])


def _kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    child.stderr.close()


def _orphaned_memcached() -> int:
    """Return the pid of a memcached whose owner was SIGKILLed with no death-signal guard."""
    child, pid = _start_in_child("memcached", guard=False)
    _kill(child)
    assert not _gone(pid, timeout=0.5), "without the guard the server should have outlived us"
    return pid


@needs_memcached
def test_memcached_stores_and_returns_a_value() -> None:
    from pymemcache.client.base import Client

    svc = services.start_service("memcached")
    client = Client(svc.address, connect_timeout=5, timeout=5)
    client.set("greeting", b"hello")
    assert client.get("greeting") == b"hello"
    assert svc.location == f"unix:{svc.socket_path}"
    client.close()


@needs_redis
def test_redis_stores_and_returns_a_value() -> None:
    import redis

    svc = services.start_service("redis")
    client = redis.Redis.from_url(svc.url, socket_timeout=5)
    client.set("greeting", "hello")
    assert client.get("greeting") == b"hello"
    assert svc.url == f"unix://{svc.socket_path}?db=0"
    client.close()


@needs_postgres
def test_postgres_answers_select_1(pg_home: Path) -> None:
    svc = services.start_service("postgres")
    with svc.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert svc.url == f"postgres://postgres@{quote(svc.host, safe='')}:5432/postgres"
    assert (Path(svc.host) / ".s.PGSQL.5432").is_socket()


@needs_postgres
def test_postgres_creates_a_database_from_a_template(pg_home: Path) -> None:
    svc = services.start_service("postgres")
    svc.drop_database("lesson_template")
    svc.drop_database("lesson_copy")
    svc.create_database("lesson_template")
    with svc.connect("lesson_template") as conn:
        conn.execute("CREATE TABLE seeded (id int)")
        conn.execute("INSERT INTO seeded VALUES (1), (2)")

    url = svc.create_database("lesson_copy", template="lesson_template")

    assert url.endswith("/lesson_copy")
    with svc.connect("lesson_copy") as conn:
        assert conn.execute("SELECT count(*) FROM seeded").fetchone() == (2,)
    svc.drop_database("lesson_copy")
    assert not svc.database_exists("lesson_copy")


@needs_postgres
def test_postgres_starts_after_its_server_was_killed_and_keeps_data(pg_home: Path) -> None:
    svc = services.start_service("postgres")
    svc.drop_database("survivor")
    svc.create_database("survivor")
    pid = svc.pid  # read once: it turns None as soon as the server is seen dead
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # leaves a stale postmaster.pid behind
    assert _gone(pid)

    again = services.start_service("postgres")

    assert again is not svc
    assert again.database_exists("survivor")


@needs_postgres
def test_postgres_started_twice_in_one_process_is_the_same_server(pg_home: Path) -> None:
    first = services.start_service("postgres")
    assert services.start_service("postgres") is first


@needs_postgres
def test_postgres_refuses_a_second_server_while_another_process_runs_one(pg_home: Path) -> None:
    child, pid = _start_in_child("postgres")
    try:
        with pytest.raises(ServiceUnavailable, match=rf"pid {pid}.* already running"):
            services.start_service("postgres")
    finally:
        _kill(child)
    assert _gone(pid)


@needs_postgres
@pytest.mark.skipif(not IS_ROOT, reason="only root has to hand PostgreSQL to another user")
def test_postgres_runs_as_the_postgres_user_when_started_by_root(pg_home: Path) -> None:
    svc = services.start_service("postgres")
    owner_uid = os.stat(f"/proc/{svc.pid}").st_uid
    assert owner_uid == pwd.getpwnam("postgres").pw_uid


@needs_memcached
def test_memcached_restart_keeps_the_socket_and_forgets_values() -> None:
    from pymemcache.client.base import Client

    svc = services.start_service("memcached")
    address, old_pid = svc.address, svc.pid
    before = Client(address, connect_timeout=5, timeout=5)
    before.set("k", b"v")
    before.close()

    svc.restart()

    after = Client(address, connect_timeout=5, timeout=5)
    assert svc.address == address and svc.pid != old_pid
    assert after.get("k") is None
    after.close()


@pytest.mark.parametrize("name", ["memcached", "redis", "postgres"])
def test_servers_listen_on_no_tcp_port_only_on_a_private_socket(name: str, pg_home: Path) -> None:
    if not services.service_available(name) and not services.is_strict():
        pytest.skip(f"{name} is not installed")
    svc = services.start_service(name)
    assert svc.pid is not None

    inet = [c for c in psutil.Process(svc.pid).net_connections(kind="inet")]
    folder = svc.socket_path.parent

    assert inet == []
    assert svc.socket_path.is_socket()
    assert folder.stat().st_mode & 0o077 == 0, f"{folder} is open to other users"
    assert len(str(svc.socket_path)) < 104  # fits sun_path everywhere


@needs_postgres
def test_postgres_lets_in_no_one_by_trust(pg_home: Path) -> None:
    svc = services.start_service("postgres")
    rules = [
        line.split()
        for line in (svc.data_dir / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules and all(rule[0] == "local" and rule[3] == "peer" for rule in rules)


@needs_memcached
def test_stop_removes_the_servers_folder() -> None:
    svc = services.start_service("memcached")
    folder = svc.run_dir
    assert folder.is_dir()

    svc.stop()

    assert not folder.exists()
    svc.restart()  # a lesson may start it again later, at the same address
    assert svc.running and folder.is_dir()


@needs_memcached
def test_stop_recorded_stops_servers_other_processes_started() -> None:
    child, pid = _start_in_child("memcached")
    try:
        stopped = services.stop_recorded()
        assert stopped == [pid]
        assert _gone(pid)
        assert services.running_services() == []
    finally:
        _kill(child)


def test_reaping_removes_run_folders_of_starts_that_never_finished() -> None:
    stale = runtime_dir() / "memcached-abcdefgh"
    stale.mkdir()
    fresh = runtime_dir() / "redis-abcdefgh"
    fresh.mkdir()
    old = time.time() - 3600
    os.utime(stale, (old, old))

    services.reap_orphans()

    assert not stale.exists()
    assert fresh.exists()  # it may be a start under way in another kernel


def test_reaping_removes_the_per_port_folders_older_perflabs_left(perflab_home: Path) -> None:
    old = [
        perflab_home / "services" / f"{name}-{port}"
        for name, port in [("memcached", 41234), ("redis", 38001)]
    ]
    for folder in old:
        folder.mkdir(parents=True)
        (folder / "memcached.log").write_text("old")

    services.reap_orphans()

    assert [folder for folder in old if folder.exists()] == []


@needs_redis
def test_stop_ends_the_server_process() -> None:
    svc = services.start_service("redis")
    pid = svc.pid
    assert pid is not None

    svc.stop()

    assert not svc.running and svc.pid is None
    assert _gone(pid, timeout=1)
    svc.stop()  # a second stop is harmless


@needs_memcached
def test_leaving_the_with_block_stops_the_server() -> None:
    with services.start_service("memcached") as svc:
        pid = svc.pid
        assert svc.running
    assert pid is not None and _gone(pid, timeout=1)


@needs_memcached
@needs_redis
@needs_postgres
def test_stop_all_stops_every_service(pg_home: Path) -> None:
    started = [services.start_service(name) for name in ("memcached", "redis", "postgres")]
    pids = [svc.pid for svc in started]

    services.stop_all()

    assert all(pid is not None and _gone(pid, timeout=2) for pid in pids)
    assert services.running_services() == []


def test_unknown_service_name_lists_the_choices() -> None:
    with pytest.raises(UnknownChoice, match=r"'mongodb'.*'memcached', 'redis', 'postgres'"):
        services.start_service("mongodb")


@pytest.mark.parametrize(
    ("name", "binary", "apt", "brew", "conda"),
    [
        ("memcached", "memcached", "memcached", "memcached", "memcached"),
        ("redis", "redis-server", "redis-server", "redis", "redis-server"),
        ("postgres", "postgres", "postgresql", "postgresql@17", "postgresql"),
    ],
)
def test_missing_binary_error_names_it_and_gives_install_lines(
    name: str,
    binary: str,
    apt: str,
    brew: str,
    conda: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(postgres, "BINDIR_GLOBS", ())

    assert not services.service_available(name)
    with pytest.raises(ServiceUnavailable) as info:
        services.start_service(name)

    message = str(info.value)
    assert f"`{binary}`" in message
    assert f"sudo apt-get install {apt}" in message
    assert f"brew install {brew}" in message
    assert f"conda install -c conda-forge {conda}" in message


@needs_memcached
def test_server_that_fails_to_start_reports_the_end_of_its_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command = services.MemcachedService._command
    monkeypatch.setattr(
        services.MemcachedService, "_command", lambda svc: [*command(svc), "--no-such-flag"]
    )
    with pytest.raises(ServiceUnavailable, match="exited with code") as info:
        services.start_service("memcached")
    assert "unrecognized option" in str(info.value)  # memcached's own complaint, from the log


@needs_memcached
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="setpriv is Linux-only")
def test_strict_mode_refuses_to_start_without_the_death_signal_guard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(accounts, "setpriv", lambda: None)
    monkeypatch.setenv("PERFLAB_STRICT", "1")
    with pytest.raises(ServiceUnavailable, match="setpriv"):
        services.start_service("memcached")


@pytest.mark.parametrize("name", ["memcached", "postgres"])
@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs util-linux setpriv")
def test_sigkilled_owner_leaves_no_server_running(name: str, pg_home: Path) -> None:
    if not services.service_available(name) and not services.is_strict():
        pytest.skip(f"{name} is not installed")
    child, pid = _start_in_child(name)

    _kill(child)

    assert _gone(pid), f"{name} (pid {pid}) outlived its SIGKILLed owner"


@needs_redis
def test_owner_exiting_normally_shuts_the_server_down_gracefully(perflab_home: Path) -> None:
    # Without the death-signal guard, only the atexit hook can stop it; without the hook,
    # mirakuru's garbage collection would SIGKILL it instead (no goodbye in the log).
    child, pid = _start_in_child("redis", guard=False, then="exit")
    child.communicate(timeout=30)
    assert child.returncode == 0

    assert _gone(pid, timeout=1)
    (log,) = runtime_dir().glob("redis-*/redis.log")
    assert "ready to exit" in log.read_text()


@needs_redis
@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs util-linux setpriv")
def test_server_started_from_a_short_lived_thread_outlives_the_thread() -> None:
    started: list[services.Service] = []
    worker = threading.Thread(target=lambda: started.append(services.start_service("redis")))
    worker.start()
    worker.join()

    time.sleep(0.5)  # Redis exits within milliseconds of a parent-death signal
    assert started[0].running


@needs_memcached
def test_find_orphans_reports_a_server_whose_owner_died() -> None:
    pid = _orphaned_memcached()
    assert pid in services.find_orphans()


@needs_memcached
def test_find_orphans_ignores_a_server_whose_owner_lives() -> None:
    svc = services.start_service("memcached")
    assert svc.pid not in services.find_orphans()
    assert services.reap_orphans() == []
    assert svc.running


@needs_memcached
@needs_redis
def test_start_service_reaps_a_server_whose_owner_died() -> None:
    pid = _orphaned_memcached()

    services.start_service("redis")

    assert _gone(pid, timeout=1)
    assert pid not in [record["pid"] for record in services.running_services()]


@needs_memcached
def test_running_services_drops_records_of_dead_servers(perflab_home: Path) -> None:
    pid = services.start_service("memcached").pid
    assert pid is not None
    assert [r["pid"] for r in services.running_services()] == [pid]
    os.kill(pid, signal.SIGKILL)
    assert _gone(pid)

    assert services.running_services() == []
    assert list((perflab_home / "services" / "running").glob("*.json")) == []


@pytest.mark.skipif(not glob.glob("/usr/lib/postgresql/*/bin/postgres"), reason="no Debian server")
def test_postgres_is_found_off_path_where_debian_installs_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fresh Debian/Ubuntu (and Binder) keeps postgres and initdb out of PATH.
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    found = postgres.find_bindir()
    assert found is not None and str(found).startswith("/usr/lib/postgresql/")


@pytest.mark.skipif(not IS_ROOT, reason="only root hands PostgreSQL a folder in the temp dir")
def test_roots_postgres_folder_has_a_random_name_and_ignores_a_planted_one(
    perflab_home: Path, tmp_path: Path
) -> None:
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)
    (perflab_home / "services").mkdir(parents=True, exist_ok=True)
    (perflab_home / "services" / "postgres-home").write_text(str(planted))

    home = services.postgres_home()

    info = home.lstat()
    assert home != planted
    assert home.name.startswith("perflab-pg-") and home.name != "perflab-pg-"
    assert info.st_uid == pwd.getpwnam("postgres").pw_uid
    assert info.st_mode & 0o777 == 0o700
    assert services.postgres_home() == home  # remembered for the next kernel
    home.rmdir()
