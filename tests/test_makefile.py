"""Test the Makefile's virtualenv rule: a PYTHON of another version rebuilds it, nothing else does.

Most tests use `make -n` (print the recipe, run nothing) against a fake virtualenv whose
bin/python only prints a version; one builds a real virtualenv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
OTHER_PYTHON = "3.0"  # no supported Python has this version, so it always differs


def fake_venv(root: Path, version: str, *, installed: bool) -> Path:
    """Return a folder that looks like a virtualenv made by Python `version`."""
    venv = root / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f"#!/bin/sh\necho {version}\n")
    python.chmod(0o755)
    if installed:
        # Newer than requirements.txt and pyproject.toml: make counts the packages as installed.
        (venv / ".installed").touch()
    return venv


def run_make(*args: str, python: str | None) -> subprocess.CompletedProcess[str]:
    """Run make in the repository, with PYTHON on the command line only when given."""
    env = dict(os.environ)
    # Under `make test PYTHON=...` the parent make passes its variables down in MAKEFLAGS, which
    # would make PYTHON explicit here too.
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PYTHON", "VENV"):
        env.pop(name, None)
    command = ["make", "-C", str(REPO_ROOT), *args]
    if python is not None:
        command.append(f"PYTHON={python}")
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_make_rebuilds_a_venv_made_by_another_python_version(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path, OTHER_PYTHON, installed=True)

    result = run_make("-n", "setup", f"VENV={venv}", python=sys.executable)

    assert result.returncode == 0, result.stderr
    note = (
        f"note: {venv} uses Python {OTHER_PYTHON} but PYTHON={sys.executable} is "
        f"{THIS_PYTHON}: rebuilding {venv}"
    )
    assert note in result.stdout.replace('" "', " ")  # make -n shows echo's two arguments
    assert f"rm -rf {venv}\n" in result.stdout
    assert f"{sys.executable} -m venv {venv}" in result.stdout


def test_make_reinstalls_the_packages_into_a_rebuilt_venv(tmp_path: Path) -> None:
    # The stamp is up to date, but it goes with the old virtualenv.
    venv = fake_venv(tmp_path, OTHER_PYTHON, installed=True)

    result = run_make("-n", "setup", f"VENV={venv}", python=sys.executable)

    assert f"{venv}/bin/uv pip install" in result.stdout


def test_make_keeps_a_venv_of_the_same_python_version(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path, THIS_PYTHON, installed=False)

    result = run_make("-n", "setup", f"VENV={venv}", python=sys.executable)

    assert result.returncode == 0, result.stderr
    assert f"{venv}/bin/uv pip install" in result.stdout  # the dry run got that far
    assert "note:" not in result.stdout
    assert "-m venv" not in result.stdout


def test_make_keeps_any_venv_when_python_is_not_given(tmp_path: Path) -> None:
    # A plain `make lab` after `make lab PYTHON=python3.12` must not switch back to python3.
    venv = fake_venv(tmp_path, OTHER_PYTHON, installed=False)

    result = run_make("-n", "setup", f"VENV={venv}", python=None)

    assert result.returncode == 0, result.stderr
    assert f"{venv}/bin/uv pip install" in result.stdout
    assert "note:" not in result.stdout
    assert "-m venv" not in result.stdout


def test_make_keeps_the_venv_when_the_python_asked_for_is_missing(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path, OTHER_PYTHON, installed=True)
    missing = str(tmp_path / "no-such-python3")

    result = run_make("setup", f"VENV={venv}", python=missing)

    assert result.returncode != 0
    assert f"error: '{missing}' is missing or older than Python" in result.stderr
    assert (venv / "bin" / "python").read_text() == f"#!/bin/sh\necho {OTHER_PYTHON}\n"


@pytest.mark.slow
def test_make_replaces_the_venv_with_one_of_the_python_asked_for(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path, OTHER_PYTHON, installed=True)

    # Only the virtualenv target: installing the packages would take minutes.
    result = run_make(f"{venv}/bin/python", f"VENV={venv}", python=sys.executable)

    assert result.returncode == 0, result.stderr
    assert f"rebuilding {venv}" in result.stdout
    assert not (venv / ".installed").exists()
    version = subprocess.run(
        [venv / "bin" / "python", "-c", "import sys; print(*sys.version_info[:2], sep='.')"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == THIS_PYTHON
