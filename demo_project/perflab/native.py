"""Build C into Python from a notebook (lesson 17): SWIG, Cython, or a plain library for cffi.

A lesson that says "rewrite the hot loop in C" should show the whole price: the build commands,
how long they take, and how much code the tools generate for someone to keep working. So
``lab.build_native(...)`` runs the real commands (the compiler straight from ``sysconfig``, no
setuptools), in the learner's private state folder, never in the repository. Builds are cached
by a hash of the sources, the tool and the interpreter, so a re-run imports what it built
before, and still reports how long the build took when it ran.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from types import ModuleType
from typing import Any

from perflab.errors import PerflabError, UnknownChoice
from perflab.paths import state_dir

__all__ = [
    "TOOLS", "Build", "BuildFailed", "Native", "compiler_status", "python_include", "tool_path",
]

#: What ``build_native`` can build: a plain shared library (for cffi), a SWIG or a Cython module.
TOOLS = ("c", "swig", "cython")
#: How each platform gets a C compiler and Python's headers: the hint a missing one prints.
INSTALL = ("Install: sudo apt install gcc python3-dev (Debian/Ubuntu), xcode-select --install "
           "(macOS), or conda install -c conda-forge c-compiler.")
#: Placeholder shown in commands for Python's include folder (its real path names your home).
INCLUDE_SHOWN = "$PY_INCLUDE"
#: Build marker, written last: a folder without it is an interrupted build, built again.
MARKER = "build.json"


class BuildFailed(PerflabError):
    """Raise when a build command fails; the message carries the compiler's own words."""


@dataclass
class Build:
    """Hold what a build made: the module (or library), its commands, time and generated code."""

    tool: str
    name: str
    commands: list[str]
    seconds: float
    cached: bool
    written_lines: dict[str, int]
    generated_lines: dict[str, int]
    folder: Path
    artifact: str
    module: ModuleType | None = field(default=None, repr=False)

    @property
    def library(self) -> str:
        """Return the built file's path, for ``cffi.FFI().dlopen`` (a plain C library)."""
        return str(self.folder / self.artifact)

    @property
    def file_name(self) -> str:
        """Return the built file's name: a Python module's carries this interpreter's ABI tag."""
        return self.artifact

    def summary(self) -> str:
        """Return one line: the tool, the lines written and generated, the build time."""
        written = sum(self.written_lines.values())
        generated = sum(self.generated_lines.values())
        when = "cached from an earlier run" if self.cached else "built now"
        return (f"{self.tool}: {written:,} lines written, {generated:,} lines generated, "
                f"build {self.seconds:.2f} s ({when})")

    def __str__(self) -> str:
        return "\n".join(["$ " + c for c in self.commands] + [self.summary()])

    def __repr__(self) -> str:  # the folder's path would name your home: never shown
        return f"<Build {self.summary()}>"

    def _repr_markdown_(self) -> str:
        commands = "\n".join("$ " + c for c in self.commands)
        return f"```console\n{commands}\n```\n{self.summary()}"


def tool_path(name: str) -> str | None:
    """Return an executable's path: next to this Python first (a venv's bin), then on PATH.

    A kernel started by Jupyter may not have the venv's bin on its PATH, where pip put swig.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def python_include() -> Path:
    """Return the folder holding this interpreter's ``Python.h``."""
    return Path(sysconfig.get_paths()["include"])


def _compiler() -> str | None:
    configured = (sysconfig.get_config_var("CC") or "").split()
    for candidate in ([configured[0]] if configured else []) + ["cc", "gcc", "clang"]:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def compiler_status() -> tuple[bool, str]:
    """Return whether C extensions can be built here: a compiler, Python.h, swig and Cython."""
    if _compiler() is None:
        return False, f"No C compiler found (sysconfig's CC, cc, gcc or clang). {INSTALL}"
    if not (python_include() / "Python.h").is_file():
        return False, f"Python's headers (Python.h) are missing. {INSTALL}"
    if tool_path("swig") is None:
        return False, "The swig executable is missing. Install: pip install swig"
    if importlib.util.find_spec("Cython") is None:
        return False, "Cython is missing. Install: pip install cython"
    return True, ""


def _count_lines(folder: Path, names: list[str]) -> dict[str, int]:
    return {n: len((folder / n).read_text(errors="replace").splitlines()) for n in names}


def _plan(
    tool: str, name: str, sources: Mapping[str, str]
) -> tuple[list[list[str]], str, list[str]]:
    """Return the commands (with ``{CC}``-style placeholders), the artifact, the generated files."""
    c_files = [f for f in sources if f.endswith(".c")]
    if tool == "cython" and f"{name}.c" in c_files:
        raise PerflabError(f"Cython writes {name}.c itself: give your C file another name.")
    ext = sysconfig.get_config_var("EXT_SUFFIX") or importlib.machinery.EXTENSION_SUFFIXES[0]
    cflags = ["-O2", "-fPIC", "-shared"]
    if tool == "c":
        artifact = f"lib{name}.so"
        return [["{CC}", *cflags, *c_files, "-o", artifact, "-lm"]], artifact, []
    if tool == "swig":
        interface = f"{name}.i"
        wrapper = f"{name}_wrap.c"
        artifact = f"_{name}{ext}"
        return [
            ["{SWIG}", "-python", "-o", wrapper, interface],
            ["{CC}", *cflags, "-I{INCLUDE}", wrapper, *c_files, "-o", artifact, "-lm"],
        ], artifact, [wrapper, f"{name}.py"]
    pyx = f"{name}.pyx"
    artifact = f"{name}{ext}"
    return [
        ["{PYTHON}", "-m", "cython", "-3", pyx, "-o", f"{name}.c"],
        ["{CC}", *cflags, "-I{INCLUDE}", f"{name}.c", *c_files, "-o", artifact, "-lm"],
    ], artifact, [f"{name}.c"]


def _fill(command: list[str], values: dict[str, str]) -> list[str]:
    out = []
    for word in command:
        for key, value in values.items():
            word = word.replace("{" + key + "}", value)
        out.append(word)
    return out


def _shown(command: list[str]) -> str:
    shown = {"CC": "cc", "SWIG": "swig", "PYTHON": "python", "INCLUDE": INCLUDE_SHOWN}
    return " ".join(w if "$" in w else shlex.quote(w) for w in _fill(command, shown))


def _import(build: Build) -> ModuleType | None:
    """Import a built module from its folder, under its own name, fresh each time."""
    if build.tool == "c":
        return None
    path = build.folder / build.artifact
    if build.tool == "swig":
        # SWIG's Python file imports the extension as ``_name``: load that first, then the file.
        _load(f"_{build.name}", path)
        return _load(build.name, build.folder / f"{build.name}.py")
    return _load(build.name, path)


def _load(module_name: str, path: Path) -> ModuleType:
    sys.modules.pop(module_name, None)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise BuildFailed(f"Python cannot load {path.name} as a module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def build_native(tool: str, name: str, sources: Mapping[str, str]) -> Build:
    """Build ``sources`` ({file name: text}) with ``tool``, or reuse the identical earlier build.

    ``tool`` is "c" (a shared library for cffi's ``dlopen``), "swig" (``name.i`` plus C files)
    or "cython" (``name.pyx`` plus optional C files). Raise BuildFailed with the compiler's
    message when a command fails.
    """
    if tool not in TOOLS:
        raise UnknownChoice("tool", tool, list(TOOLS))
    ok, why = compiler_status()
    if not ok:
        raise BuildFailed(why)
    plan, artifact, generated = _plan(tool, name, sources)
    # A Python module is built for one interpreter; a plain C library (cffi's) for none.
    interpreter = [] if tool == "c" else [sys.version, sysconfig.get_config_var("EXT_SUFFIX")]
    key = hashlib.sha256(json.dumps(
        [tool, name, sorted(sources.items()), *interpreter]
    ).encode()).hexdigest()[:16]
    root = state_dir("native")
    folder = root / f"{name}-{tool}-{key}"
    shown = [_shown(command) for command in plan]
    if (folder / MARKER).is_file():
        saved = json.loads((folder / MARKER).read_text())
        build = Build(tool, name, shown, saved["seconds"], True, saved["written"],
                      saved["generated"], folder, artifact)
        build.module = _import(build)
        return build
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))  # another kernel may build too
    for file_name, text in sources.items():
        (work / file_name).write_text(text)
    values = {"CC": _compiler() or "cc", "SWIG": tool_path("swig") or "swig",
              "PYTHON": sys.executable, "INCLUDE": str(python_include())}
    start = perf_counter()
    for command in plan:
        run = subprocess.run(_fill(command, values), cwd=work, capture_output=True, text=True)
        if run.returncode:
            shutil.rmtree(work, ignore_errors=True)
            raise BuildFailed(f"`{_shown(command)}` failed:\n{(run.stderr or run.stdout).strip()}")
    seconds = perf_counter() - start
    written = _count_lines(work, list(sources))
    made = _count_lines(work, generated)
    (work / MARKER).write_text(json.dumps(
        {"seconds": seconds, "written": written, "generated": made}))
    try:
        work.rename(folder)
    except OSError:  # another kernel finished the same build first: use theirs
        shutil.rmtree(work, ignore_errors=True)
    build = Build(tool, name, shown, seconds, False, written, made, folder, artifact)
    build.module = _import(build)
    return build


class Native:
    """Mix into ``perflab.lab.Lab`` the methods of lesson 17: build C and call it from Python."""

    def build_native(self, tool: str, name: str, sources: Mapping[str, str]) -> Build:
        """Build ``sources`` with ``tool`` ("c", "swig", "cython") in your private folder.

        Shows the learner the real commands and their cost; an identical build is reused.
        """
        return build_native(tool, name, sources)

    def extension_tags(self) -> dict[str, Any]:
        """Return the file-name tags this interpreter imports extension modules under.

        A module built for another Python (3.11 vs 3.12) carries another tag and is not found:
        every Python upgrade means a rebuild, and every platform a wheel of its own.
        """
        return {
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX"),
            "suffixes": list(importlib.machinery.EXTENSION_SUFFIXES),
        }
