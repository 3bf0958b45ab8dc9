"""`python -m perflab`: the chores a learner runs from a terminal, each with a clear outcome."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from perflab import services

CLI = [sys.executable, "-m", "perflab"]
HOLD_SERVERS = """
import sys
from perflab import services, shared_postgres
print(services.start_service("memcached").pid, flush=True)
print(shared_postgres.attach().supervisor_pid, flush=True)
sys.stdin.readline()
"""


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PERFLAB_SCALE"}
    return {**env, "PERFLAB_HOME": str(home), **extra}


def _gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.services
def test_stop_all_stops_every_server_of_this_user_whoever_started_it(tmp_path: Path) -> None:
    for name in ("memcached", "postgres"):
        if not services.service_available(name) and not services.is_strict():
            pytest.skip(f"{name} is not installed")
    kernel = subprocess.Popen([*CLI[:1], "-c", HOLD_SERVERS], env=_env(tmp_path), text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert kernel.stdout is not None
    try:
        memcached, supervisor = int(kernel.stdout.readline()), int(kernel.stdout.readline())

        result = subprocess.run([*CLI, "services", "stop-all"], env=_env(tmp_path),
                                capture_output=True, text=True, timeout=120, check=False)

        assert result.returncode == 0, result.stderr
        assert _gone(memcached) and _gone(supervisor)
        assert "Stopped the shared PostgreSQL" in result.stdout
        listed = subprocess.run([*CLI, "services", "list"], env=_env(tmp_path),
                                capture_output=True, text=True, timeout=60, check=False)
        assert listed.stdout.strip() == ""
    finally:
        kernel.kill()
        kernel.communicate()


def test_an_unknown_scale_is_one_line_naming_where_it_came_from(tmp_path: Path) -> None:
    result = subprocess.run([*CLI, "seed"], env=_env(tmp_path, PERFLAB_SCALE="huge"),
                            capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: Unknown scale 'huge' (from the PERFLAB_SCALE environment variable). "
        "Choose one of: 'tiny', 'small', 'default', 'large'."
    ]


@pytest.mark.services
def test_seed_builds_a_postgres_template_once_and_leaves_no_server(tmp_path: Path) -> None:
    def seed() -> str:
        result = subprocess.run([*CLI, "seed", "--scale", "tiny", "--database", "postgres"],
                                env=_env(tmp_path), capture_output=True, text=True, timeout=300,
                                check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert seed().startswith("Built template for scale 'tiny' at database perflab_tpl_tiny_")
    assert seed().startswith("Already up to date: template for scale 'tiny'")
    stop = subprocess.run([*CLI, "services", "stop-all"], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=60, check=False)
    assert stop.returncode == 0, stop.stderr


def test_site_on_a_port_in_use_says_how_to_pick_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([*CLI, "site", "--port", str(port), "--scale", "tiny"],
                                env=_env(tmp_path), capture_output=True, text=True, timeout=60,
                                check=False)

    assert result.returncode == 2
    assert f"make site PORT={port + 1}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_site_gives_each_learner_an_admin_password_of_their_own(lab, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    site = subprocess.Popen([*CLI, "site", "--port", str(port), "--scale", "tiny"],
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    assert site.stdout is not None
    try:
        # Piped, not a terminal: the banner must still arrive before runserver takes over.
        banner = [site.stdout.readline() for _ in range(2)]
    finally:
        os.killpg(site.pid, signal.SIGTERM)
        site.communicate(timeout=30)
    login = next(line for line in banner if line.startswith("Admin login: admin / "))
    password = login.split(" / ")[1].split()[0]
    kept = tmp_path / "site" / "admin-password"

    assert len(password) >= 16 and password != "admin"
    assert kept.read_text().strip() == password
    assert kept.stat().st_mode & 0o777 == 0o600
    assert _admin_password_matches(tmp_path / "site" / "site-tiny.sqlite3", password)
    assert not _admin_password_matches(tmp_path / "site" / "site-tiny.sqlite3", "admin")


def _admin_password_matches(database: Path, password: str) -> bool:
    from django.contrib.auth.hashers import check_password

    with sqlite3.connect(database) as db:
        query = "SELECT password FROM auth_user WHERE username = 'admin'"
        (encoded,) = db.execute(query).fetchone()
    return check_password(password, encoded)
