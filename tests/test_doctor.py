"""`make doctor`: the learner's preflight names each problem with the one command that fixes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from perflab import doctor

CLI = [sys.executable, "-m", "perflab", "doctor"]


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("CONDA_PREFIX", "PERFLAB_STRICT")}
    return subprocess.run(CLI, env={**base, "PERFLAB_HOME": str(tmp_path), **env},
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_server_hidden_from_path_is_one_fix_line_with_its_install_command(tmp_path) -> None:
    # A PATH with only an empty folder: memcached, Redis, nginx and PgBouncer are not found.
    empty = tmp_path / "bin"
    empty.mkdir()
    result = _run(tmp_path / "home", PATH=str(empty))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    (memcached,) = [line for line in lines if line.split()[1:2] == ["memcached"]]
    assert memcached.startswith("FIX")
    assert memcached.endswith("run: sudo apt-get install memcached")
    assert "thing(s) to fix" in lines[-1]


def test_every_check_is_one_line_starting_ok_or_fix(tmp_path) -> None:
    result = _run(tmp_path / "home")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Workshop preflight")
    body = lines[1:-1]
    assert {"python", "packages", "memcached", "postgres", "disk", "memory"} <= {
        line.split()[1] for line in body
    }
    assert all(line[:3] in ("ok ", "FIX") for line in body), body
    assert result.returncode == (1 if any(line.startswith("FIX") for line in body) else 0)


def test_the_package_check_names_a_package_that_differs_from_the_lock(tmp_path) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text("django==0.0.1\n    # via -r requirements.in\npytest==0.0.2\n")
    pins = doctor.locked_pins(lock)
    assert pins == {"django": "0.0.1", "pytest": "0.0.2"}


def test_fix_lines_name_the_learners_own_installer(monkeypatch) -> None:
    monkeypatch.setenv("CONDA_PREFIX", "/opt/conda")
    assert doctor._installer() == "conda"
    monkeypatch.delenv("CONDA_PREFIX")
    monkeypatch.setattr(doctor.platform, "system", lambda: "Darwin")
    assert doctor._installer() == "brew"
