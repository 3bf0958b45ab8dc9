"""Lesson 17's toolkit: is a compiler here; do SWIG, Cython and plain C builds load and cache."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest

from perflab import native

ADD_H = "int add(int a, int b);\n"
ADD_C = '#include "add.h"\nint add(int a, int b) { return a + b; }\n'
# A compiler and Python's headers: a learner's machine may lack them; CI (strict) must not.
HAS_COMPILER = bool(shutil.which("cc") or shutil.which("gcc")) and (
    native.python_include() / "Python.h").is_file()
needs_compiler = pytest.mark.skipif(
    not HAS_COMPILER and os.environ.get("PERFLAB_STRICT") != "1", reason="no C compiler here"
)


def _only_on_path(tmp_path: Path, *names: str) -> str:
    """Return a PATH holding links to ``names`` alone (each found on today's PATH)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in names:
        found = shutil.which(name)
        if found:
            (folder / name).symlink_to(found)
    return str(folder)


def test_compiler_status_without_a_compiler_says_how_to_install_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", _only_on_path(tmp_path))
    ok, why = native.compiler_status()
    assert not ok
    assert why.startswith("No C compiler found")
    assert "sudo apt install gcc python3-dev" in why and "xcode-select --install" in why
    assert "\n" not in why


@needs_compiler
def test_compiler_status_without_python_headers_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = {**sysconfig.get_paths(), "include": str(tmp_path)}
    monkeypatch.setattr(native.sysconfig, "get_paths", lambda: paths)
    ok, why = native.compiler_status()
    assert not ok and "Python.h" in why and "python3-dev" in why


@needs_compiler
def test_compiler_status_finds_swig_beside_python_not_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", _only_on_path(tmp_path, "gcc", "cc"))
    assert native.compiler_status() == (True, "")  # the venv's bin is not on PATH: still found
    monkeypatch.setattr(native.sys, "executable", str(tmp_path / "python"))
    ok, why = native.compiler_status()
    assert not ok and why == "The swig executable is missing. Install: pip install swig"


@needs_compiler
def test_a_build_is_made_once_and_reused_while_its_sources_are_the_same() -> None:
    import cffi

    first = native.build_native("c", "add", {"add.h": ADD_H, "add.c": ADD_C})
    again = native.build_native("c", "add", {"add.h": ADD_H, "add.c": ADD_C})
    assert (first.cached, again.cached) == (False, True)
    assert again.seconds == first.seconds and again.written_lines == {"add.h": 1, "add.c": 2}
    ffi = cffi.FFI()
    ffi.cdef(ADD_H)
    assert ffi.dlopen(again.library).add(2, 3) == 5
    changed = native.build_native("c", "add", {"add.h": ADD_H, "add.c": ADD_C + "\n"})
    assert not changed.cached and changed.folder != first.folder


@needs_compiler
def test_commands_shown_name_no_private_folder() -> None:
    build = native.build_native("swig", "add_swig", {
        "add.h": ADD_H, "add.c": ADD_C,
        "add_swig.i": '%module add_swig\n%{\n#include "add.h"\n%}\n%include "add.h"\n',
    })
    assert build.module is not None and build.module.add(2, 3) == 5
    assert build.commands[0] == "swig -python -o add_swig_wrap.c add_swig.i"
    assert "-I$PY_INCLUDE" in build.commands[1]
    assert str(build.folder) not in str(build) + repr(build) and sys.prefix not in str(build)
    assert build.generated_lines["add_swig_wrap.c"] > 1000  # the wrapper someone must keep


@needs_compiler
def test_a_cython_module_carries_this_interpreter_s_abi_tag() -> None:
    pyx = 'cdef extern from "add.h":\n    int c_add "add"(int a, int b)\n\n\n' \
          "def add(int a, int b):\n    return c_add(a, b)\n"
    build = native.build_native("cython", "add_cython",
                                {"add.h": ADD_H, "add.c": ADD_C, "add_cython.pyx": pyx})
    assert build.module is not None and build.module.add(2, 3) == 5
    assert build.file_name == "add_cython" + sysconfig.get_config_var("EXT_SUFFIX")
    assert f"cpython-{sys.version_info.major}{sys.version_info.minor}" in build.file_name


@needs_compiler
def test_a_failed_build_raises_with_the_compiler_s_message() -> None:
    with pytest.raises(native.BuildFailed, match=r"failed:(.|\n)*error"):
        native.build_native("c", "broken", {"broken.c": "int add(int a, int b) { return a + }\n"})


def test_cython_refuses_a_c_file_it_would_overwrite() -> None:
    with pytest.raises(native.PerflabError, match="give your C file another name"):
        native.build_native("cython", "add", {"add.c": ADD_C, "add.pyx": "x = 1\n"})


def test_an_unknown_tool_lists_the_tools() -> None:
    with pytest.raises(native.UnknownChoice):
        native.build_native("rust", "add", {"add.rs": ""})
