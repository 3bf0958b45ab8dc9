"""Check that the ways to install the workshop agree: pip lock, conda, Binder, Makefile, CI."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

# conda-forge package name -> Debian/Ubuntu package name, for the servers the lessons use.
CONDA_TO_APT = {
    "memcached": "memcached",
    "redis-server": "redis-server",
    "postgresql": "postgresql",
    "graphviz": "graphviz",
    "nginx": "nginx",
    "pgbouncer": "pgbouncer",
    "c-compiler": "gcc",
}
#: Debian packages Binder installs that have no line of their own in environment.yml, and why.
APT_ONLY = {
    "libc6-dev": "conda-forge's c-compiler brings its own C library headers",
    "python3-dev": "conda's Python ships its own headers",
    "pypy3": "conda-forge's PyPy is a Python of its own, not a package beside CPython",
}


def read_lines(relative: str) -> list[str]:
    """Return the file's lines without comments and blanks."""
    text = (ROOT / relative).read_text()
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def load_environment_yml() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def conda_dependencies() -> list[str]:
    return [dep for dep in load_environment_yml()["dependencies"] if isinstance(dep, str)]


def conda_pip_section() -> list[str]:
    sections = [
        dep["pip"] for dep in load_environment_yml()["dependencies"] if isinstance(dep, dict)
    ]
    assert len(sections) == 1, "environment.yml should have exactly one pip: section"
    return [line.strip() for line in sections[0]]


def conda_package_names() -> set[str]:
    # "python=3.11" -> "python"; conda's spec separators are =, <, >, ! and space.
    return {re.split(r"[=<>! ]", dep, maxsplit=1)[0] for dep in conda_dependencies()}


def locked_versions() -> dict[str, Version]:
    """Return {canonical name: version} for every `name==version` line in requirements.txt."""
    pins: dict[str, Version] = {}
    for line in read_lines("requirements.txt"):
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"requirements.txt line is not an exact pin: {line}"
        pins[canonicalize_name(requirement.name)] = Version(spec.version)
    return pins


def python_minor(text: str) -> tuple[int, int]:
    """Return (major, minor) from the first `3.N` in the text."""
    match = re.search(r"(\d+)\.(\d+)", text)
    assert match, f"no Python version in {text!r}"
    return int(match[1]), int(match[2])


def makefile_variable(name: str) -> str:
    match = re.search(rf"^{name}\s*[:?]?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert match, f"Makefile defines no {name}"
    return match[1]


def test_environment_yml_pip_section_installs_the_lock_and_the_project() -> None:
    assert conda_pip_section() == ["-r requirements.txt", "-e ."]


def test_binder_requirements_pin_the_same_lock_directly() -> None:
    # repo2docker installs binder/requirements.txt before copying the repository; a
    # `-r ../requirements.txt` line would make it reinstall everything after any edit.
    binder = read_lines("binder/requirements.txt")
    assert not any(line.startswith("-r") for line in binder)
    assert binder == read_lines("requirements.txt"), "run make lock to copy the lock to binder/"


def test_conda_servers_match_binder_apt_packages() -> None:
    conda_servers = conda_package_names() - {"python", "pip"}
    assert conda_servers == set(CONDA_TO_APT), "update CONDA_TO_APT for a new or renamed server"
    apt_packages = set(read_lines("binder/apt.txt"))
    assert {CONDA_TO_APT[name] for name in conda_servers} | set(APT_ONLY) == apt_packages


def test_python_versions_agree_across_conda_binder_pyproject_and_makefile() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requires_python = SpecifierSet(pyproject["project"]["requires-python"])
    (conda_python,) = [dep for dep in conda_dependencies() if dep.startswith("python=")]
    runtime = (ROOT / "binder/runtime.txt").read_text().strip()
    assert runtime.startswith("python-")

    versions = {
        "environment.yml": python_minor(conda_python),
        "binder/runtime.txt": python_minor(runtime),
        "Makefile MIN_PYTHON": python_minor(makefile_variable("MIN_PYTHON")),
        "pyproject requires-python minimum": python_minor(str(requires_python)),
    }
    assert len(set(versions.values())) == 1, versions
    assert "3.11" in requires_python


def test_every_direct_requirement_is_pinned_in_the_lock() -> None:
    pins = locked_versions()
    for line in read_lines("requirements.in"):
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is in requirements.in but not in the lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"lock pins {name}=={pins[name]}, outside requirements.in's {requirement.specifier}"
        )


def test_lock_pins_django_52_lts() -> None:
    assert locked_versions()["django"] in SpecifierSet(">=5.2,<5.3")


def test_lock_pins_prettytable_that_ipython_sql_works_with() -> None:
    # ipython-sql 0.5.0 reads prettytable.DEFAULT, which prettytable 3.12 removed: %sql then
    # fails with KeyError: 'DEFAULT'. Move both pins together or not at all.
    pins = locked_versions()
    assert pins["ipython-sql"] == Version("0.5.0")
    assert pins["prettytable"] == Version("3.11.0")


def test_pyproject_dependencies_are_all_in_the_lock() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = locked_versions()
    for line in pyproject["project"]["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"pyproject needs {requirement.name}, which the lock lacks"
        assert requirement.specifier.contains(pins[name], prereleases=True)


def test_binder_scripts_are_executable() -> None:
    for script in ("binder/postBuild", "binder/start"):
        assert os.access(ROOT / script, os.X_OK), f"{script} needs chmod +x"


def test_ci_script_is_executable_and_runs_the_readme_test_command() -> None:
    ci = ROOT / ".ci/run"
    assert os.access(ci, os.X_OK), ".ci/run needs chmod +x"
    assert re.search(r"\bmake test\b", ci.read_text())
