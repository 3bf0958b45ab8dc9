"""A preflight a learner runs before the day (``make doctor``): is this machine ready?

Each check prints one line: ``ok`` with what it found, or ``FIX`` with the problem and the one
command that fixes it, so a learner (or an instructor reading a pasted report) knows what to do
before the workshop, not in the middle of lesson 03. Missing servers and tools are problems too:
the lessons would still run, but skip what needs them, and the day is better with them.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.utils import canonicalize_name

from perflab.paths import REPO_ROOT

__all__ = ["Check", "checks", "main"]

#: Below these, a lesson may fail or crawl (the budget is 1 GB per lesson, servers included).
MIN_FREE_DISK_GB = 2.0
MIN_AVAILABLE_MEMORY_GB = 1.5
MIN_PYTHON = (3, 11)
#: The port JupyterLab tries first (it moves on to the next free one by itself).
JUPYTER_PORT = 8888


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, whether it is fine, and what to do if not."""

    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{'ok ' if self.ok else 'FIX'}  {self.name:<14} {self.detail}"


def _installer() -> str:
    """Return the package manager whose command a fix line should name."""
    if os.environ.get("CONDA_PREFIX"):
        return "conda"
    return "brew" if platform.system() == "Darwin" else "apt"


def check_python() -> Check:
    found = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] >= MIN_PYTHON:
        return Check("python", True, f"Python {found} ({sys.executable})")
    wanted = ".".join(map(str, MIN_PYTHON))
    return Check("python", False, f"Python {found} is too old; install Python {wanted}+ and run "
                                  f"make setup PYTHON=python{wanted}")


def locked_pins(lock: Path = REPO_ROOT / "requirements.txt") -> dict[str, str]:
    """Return ``{name: version}`` for every ``name==version`` line of the pip lock."""
    pins = {}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, pinned = line.split("==", 1)
            pins[canonicalize_name(name.split("[")[0])] = pinned.split(";")[0].strip()
    return pins


def check_packages() -> Check:
    wrong = []
    pins = locked_pins()
    for name, pinned in sorted(pins.items()):
        try:
            have = version(name)
        except PackageNotFoundError:
            wrong.append(f"{name} missing")
            continue
        if have != pinned:
            wrong.append(f"{name} {have} (lock: {pinned})")
    if not wrong:
        return Check("packages", True, f"all {len(pins)} pinned packages installed")
    shown = ", ".join(wrong[:3]) + (f" and {len(wrong) - 3} more" if len(wrong) > 3 else "")
    return Check("packages", False, f"{shown}; run: make setup")


def check_servers() -> Iterator[Check]:
    from perflab import services
    from perflab.requires import SERVERS

    for name in SERVERS:
        binary = services.binary_path(name)
        if binary:
            yield Check(name, True, binary)
        else:
            command = services.install_commands(name)[_installer()]
            yield Check(name, False, f"not installed (its lessons would skip it); run: {command}")


def check_tools() -> Iterator[Check]:
    from perflab.requires import TOOLS

    for name, target in TOOLS.items():
        module_name, function_name = target.split(":")
        status: Callable[[], tuple[bool, str]] = getattr(import_module(module_name), function_name)
        ok, why = status()
        yield Check(name, ok, "found" if ok else why)


def check_ports() -> Iterator[Check]:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
    except OSError as exc:
        yield Check("loopback", False, f"cannot listen on 127.0.0.1 ({exc}); the served lessons "
                                       "(08 on) need it: ask your administrator")
        return
    yield Check("loopback", True, "127.0.0.1 accepts servers on free ports")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        in_use = sock.connect_ex(("127.0.0.1", JUPYTER_PORT)) == 0
    if in_use:
        yield Check("port 8888", True, "in use (another JupyterLab?); make lab takes the next free "
                                       "port by itself")


def check_disk() -> Check:
    from perflab.paths import state_root

    root = state_root()
    free_gb = shutil.disk_usage(root).free / 1e9
    if free_gb >= MIN_FREE_DISK_GB:
        return Check("disk", True, f"{free_gb:.1f} GB free for the lesson databases")
    return Check("disk", False, f"only {free_gb:.1f} GB free where the databases go; free "
                                f"{MIN_FREE_DISK_GB:.0f} GB or set PERFLAB_HOME to a bigger disk")


def check_memory() -> Check:
    import psutil

    available_gb = psutil.virtual_memory().available / 1e9
    if available_gb >= MIN_AVAILABLE_MEMORY_GB:
        return Check("memory", True, f"{available_gb:.1f} GB available (a lesson needs up to 1)")
    return Check("memory", False, f"only {available_gb:.1f} GB available; close other programs "
                                  f"(a lesson with its servers needs up to 1 GB)")


def checks() -> Iterator[Check]:
    """Yield every check in the order a learner would fix them."""
    yield check_python()
    yield check_packages()
    yield from check_servers()
    yield from check_tools()
    yield from check_ports()
    yield check_disk()
    yield check_memory()


def main() -> int:
    """Print the report; return 1 when anything needs fixing, so scripts can stop on it."""
    print("Workshop preflight (make doctor): each FIX line says what to run.")
    problems = 0
    for check in checks():
        print(check, flush=True)
        problems += not check.ok
    if problems:
        print(f"{problems} thing(s) to fix. The lessons still run, skipping what is missing.")
        return 1
    print("All set for every lesson.")
    return 0
