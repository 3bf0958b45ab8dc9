"""What a learner's machine throws at setup(): killed builds, full disks, bad settings, races.

Each case runs in a child Python with its own PERFLAB_HOME, as a kernel would, so this pytest
process's Django stays configured for the other tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from perflab import services

IS_ROOT = os.geteuid() == 0

SETUP = """
import sys
from perflab import setup
lab = setup(scale=sys.argv[1], database=sys.argv[2], quiet=True)
print("DATABASE", lab.database_settings["NAME"], flush=True)
print("NOTES", lab.notes, flush=True)
"""

# The same, reporting perflab's error as the learner reads it: the type and one message.
SETUP_REPORTING = """
import sys
from perflab import PerflabError, setup
PATCH
try:
    setup(scale=sys.argv[1], database=sys.argv[2], quiet=True)
except PerflabError as exc:
    print("ERROR", type(exc).__name__, str(exc), flush=True)
    sys.exit(3)
print("OK", flush=True)
"""

# A full disk without a tmpfs: the build's seeding, or the copy, fails as a full disk makes it.
FILL_DURING_BUILD = """
import sqlite3
from perflab import databases
seed = databases._seed_current
def seed_until_full(scale):
    seed(scale)  # the partial file really holds data, as it would on a disk that filled up
    raise sqlite3.OperationalError("database or disk is full")
databases._seed_current = seed_until_full
"""
FILL_DURING_COPY = """
import errno, shutil
def copy_until_full(src, dst, **kwargs):
    with open(src, "rb") as source, open(dst, "wb") as target:
        target.write(source.read(100_000))
    raise OSError(errno.ENOSPC, "No space left on device")
shutil.copyfile = copy_until_full
"""


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PERFLAB_HOME": str(home), **extra}
    env.pop("PERFLAB_STRICT", None)
    return env


def _setup(home: Path, scale: str = "tiny", database: str = "sqlite", *, patch: str = "",
           **extra: str) -> subprocess.CompletedProcess[str]:
    code = SETUP_REPORTING.replace("PATCH", patch)
    return subprocess.run(
        [sys.executable, "-c", code, scale, database], env=_env(home, **extra),
        capture_output=True, text=True, timeout=180, check=False,
    )


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 3, f"expected perflab's error:\n{result.stdout}\n{result.stderr}"
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("ERROR")]
    return line


def _partial_files(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if ".building-" in p.name or p.name.endswith("-journal")]


@contextlib.contextmanager
def _small_disk(tmp_path: Path, size: str) -> Iterator[tuple[Path, str]]:
    """Yield (folder, how): a real tmpfs of ``size`` where root can mount one, else a plain one."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = IS_ROOT and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        capture_output=True, check=False,
    ).returncode == 0
    try:
        yield folder, "tmpfs" if mounted else "injected ENOSPC"
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.services
def test_three_cold_kernels_on_postgres_all_get_a_lab(tmp_path: Path) -> None:
    if not services.service_available("postgres") and not services.is_strict():
        pytest.skip("postgres is not installed")
    env = _env(tmp_path, PERFLAB_STRICT="1")
    kernels = [
        subprocess.Popen([sys.executable, "-c", SETUP, "tiny", "postgres"], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    results = [kernel.communicate(timeout=180) for kernel in kernels]

    failures = [err for kernel, (_, err) in zip(kernels, results, strict=True)
                if kernel.returncode != 0]
    assert failures == [], failures[0][-2000:] if failures else ""
    databases = {line.split()[1] for out, _ in results for line in out.splitlines()
                 if line.startswith("DATABASE")}
    assert len(databases) == 3  # one copy each, from one template


def test_a_build_killed_midway_is_cleaned_up_by_the_next_setup(tmp_path: Path) -> None:
    # Killed after seeding, before the template is renamed into place: a real partial file.
    hang_after_seeding = (
        "from perflab import databases\n"
        "seed = databases._seed_current\n"
        "def seed_then_hang(scale):\n"
        "    seed(scale)\n"
        "    print('SEEDED', flush=True)\n"
        "    __import__('time').sleep(600)\n"
        "databases._seed_current = seed_then_hang\n"
    )
    child = subprocess.Popen([sys.executable, "-c", hang_after_seeding + SETUP, "tiny", "sqlite"],
                             env=_env(tmp_path), stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "SEEDED"
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert _partial_files(tmp_path), "the build left no partial file to clean"

    again = subprocess.run([sys.executable, "-c", SETUP, "tiny", "sqlite"], env=_env(tmp_path),
                           capture_output=True, text=True, timeout=180, check=False)

    assert again.returncode == 0, again.stderr[-2000:]
    assert "was interrupted" in again.stdout
    assert _partial_files(tmp_path) == []


def test_a_disk_that_fills_during_the_build_keeps_no_partial_file(tmp_path: Path) -> None:
    with _small_disk(tmp_path, "2m") as (disk, how):
        patch = "" if how == "tmpfs" else FILL_DURING_BUILD
        result = _setup(disk / "home", "small", patch=patch)
        line = _error_line(result)
        leftovers = _partial_files(disk)
        used = sum(p.stat().st_size for p in disk.rglob("*") if p.is_file())
    print(f"full disk simulated with: {how}")
    assert line.startswith("ERROR DiskFull The disk holding")
    assert "'small' database, which needs about 5 MB" in line
    assert "PERFLAB_HOME" in line
    assert leftovers == []
    assert used < 100_000, f"{used} bytes still held on the full disk"


def test_a_disk_that_fills_during_the_copy_removes_the_truncated_copy(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert "OK" in _setup(home, "small").stdout  # the template, on a disk with room
    with _small_disk(tmp_path, "7m") as (disk, how):
        patch = "" if how == "tmpfs" else FILL_DURING_COPY
        # The template fits on the small disk; a second copy of it does not.
        (disk / "home").mkdir(mode=0o700)
        subprocess.run(["cp", "-r", str(home / "templates"), str(disk / "home")], check=True)
        result = _setup(disk / "home", "small", patch=patch)
        line = _error_line(result)
        labs = list((disk / "home" / "labs").glob("*.sqlite3"))
    print(f"full disk simulated with: {how}")
    assert line.startswith("ERROR DiskFull")
    assert "needs about 5 MB" in line
    assert labs == []


def test_an_unusable_perflab_home_is_one_line_that_names_it(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")

    line = _error_line(_setup(not_a_folder / "perflab"))

    assert "PERFLAB_HOME" in line and str(not_a_folder) in line
    assert "Point PERFLAB_HOME at a folder you own" in line


def test_a_state_folder_others_could_read_is_made_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)

    assert "OK" in _setup(home).stdout

    assert home.stat().st_mode & 0o777 == 0o700


def test_an_unknown_perflab_scale_names_the_variable(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SETUP_REPORTING.replace("PATCH", ""), "", "sqlite"],
        env=_env(tmp_path, PERFLAB_SCALE="huge"), capture_output=True, text=True, timeout=60,
        check=False,
    )

    line = _error_line(result)

    assert "Unknown scale 'huge' (from the PERFLAB_SCALE environment variable)" in line
    assert "'tiny', 'small', 'default', 'large'" in line


def test_in_a_notebook_perflabs_errors_show_as_one_line_not_a_traceback(tmp_path: Path) -> None:
    code = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "shell.run_cell('from perflab import setup\\nsetup(scale=\"huge\")')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), text=True,
                            capture_output=True, timeout=60, check=False)
    shown = result.stdout + result.stderr

    assert "UnknownChoice: Unknown scale 'huge'" in shown
    assert "Traceback" not in shown and "---------" not in shown
