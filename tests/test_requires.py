"""%%requires: run a cell where its library is new (or old) enough, say so plainly elsewhere."""

from __future__ import annotations

import importlib

import django
import pytest
from IPython.core.interactiveshell import InteractiveShell

from perflab import magics, requires
from perflab.errors import PerflabError, ServiceUnavailable


@pytest.fixture
def shell() -> InteractiveShell:
    ipython = InteractiveShell.instance()
    magics.register_magics(ipython)
    return ipython


def test_met_requirement_runs_the_cell_in_the_user_namespace(shell) -> None:
    shell.run_cell_magic("requires", "django>=1.0", "ran = 6 * 7")
    assert shell.user_ns["ran"] == 42


def test_unmet_requirement_skips_the_cell_and_says_what_it_has(shell, capsys) -> None:
    shell.user_ns.pop("skipped", None)
    shell.run_cell_magic("requires", "django>=99", "skipped = True")
    assert "skipped" not in shell.user_ns
    assert capsys.readouterr().out == (
        f"Skipped: this cell needs django>=99; this kernel has Django {django.get_version()}.\n"
    )


def test_missing_package_is_reported_as_not_installed() -> None:
    met, why = requires.requirement_met("surely-not-installed-pkg>=1")
    assert not met and "not installed" in why


def test_an_error_inside_a_met_cell_fails_the_cell(shell) -> None:
    with pytest.raises(ZeroDivisionError):
        shell.run_cell_magic("requires", "django>=1.0", "1 / 0")


def test_a_malformed_requirement_is_a_clear_error() -> None:
    with pytest.raises(PerflabError, match=r"like django>=6\.1"):
        requires.requirement_met("django >= six")


def test_a_database_requirement_follows_the_lab_vendor(lab, shell, capsys) -> None:
    shell.user_ns.pop("on_pg", None)
    shell.run_cell_magic("requires", "postgresql", "on_pg = True")
    assert "on_pg" not in shell.user_ns
    assert capsys.readouterr().out == (
        "Skipped: this cell needs a PostgreSQL lab; this lab runs on SQLite.\n"
    )
    shell.run_cell_magic("requires", "sqlite", "on_sqlite = True")
    assert shell.user_ns["on_sqlite"] is True


@pytest.mark.services
def test_a_postgresql_cell_runs_in_a_postgres_lab(shell) -> None:
    import perflab

    perflab.setup(database="postgres", scale="tiny", quiet=True)
    try:
        shell.run_cell_magic("requires", "postgresql", "on_pg = True")
        assert shell.user_ns["on_pg"] is True
    finally:
        perflab.setup(scale="tiny", quiet=True)


def test_a_met_cell_returns_its_last_expression_for_display(shell) -> None:
    assert shell.run_cell_magic("requires", "django>=1.0", "x = 6\nx * 7") == 42
    assert shell.run_cell_magic("requires", "django>=1.0", "x = 6\nx * 7;") is None
    assert shell.run_cell_magic("requires", "django>=1.0", "y = 1") is None
    assert shell.user_ns["y"] == 1


def test_line_magics_inside_a_met_cell_still_run(shell) -> None:
    assert shell.run_cell_magic("requires", "django>=1.0", "z = 5\n%time z + 1") == 6


def test_a_server_requirement_follows_what_is_installed(shell, capsys, monkeypatch) -> None:
    from perflab import services

    monkeypatch.setattr(services, "service_available", lambda name: name == "memcached")
    shell.run_cell_magic("requires", "memcached", "has_memcached = True")
    assert shell.user_ns["has_memcached"] is True
    shell.user_ns.pop("has_redis", None)
    shell.run_cell_magic("requires", "redis", "has_redis = True")
    assert "has_redis" not in shell.user_ns
    out = capsys.readouterr().out
    assert out.startswith("Skipped: this cell needs a redis server, which is not installed here.")
    assert "sudo apt-get install redis-server" in out


def missing_tool() -> tuple[bool, str]:
    return False, "no frobnicator here. Install: apt install frobnicator"


def present_tool() -> tuple[bool, str]:
    return True, ""


def test_a_missing_tool_skips_the_cell_for_a_learner(shell, capsys, monkeypatch) -> None:
    monkeypatch.delenv("PERFLAB_STRICT", raising=False)
    monkeypatch.setitem(requires.TOOLS, "frobnicator", f"{__name__}:missing_tool")
    shell.user_ns.pop("tool_ran", None)
    shell.run_cell_magic("requires", "frobnicator", "tool_ran = True")
    assert "tool_ran" not in shell.user_ns
    assert capsys.readouterr().out == (
        "Skipped: this cell needs frobnicator. no frobnicator here. "
        "Install: apt install frobnicator\n"
    )


def test_a_missing_tool_is_an_error_in_strict_mode(shell, monkeypatch) -> None:
    monkeypatch.setenv("PERFLAB_STRICT", "1")
    monkeypatch.setitem(requires.TOOLS, "frobnicator", f"{__name__}:missing_tool")
    with pytest.raises(ServiceUnavailable, match="PERFLAB_STRICT=1 and frobnicator is missing"):
        requires.requirement_met("frobnicator")


def test_a_present_tool_runs_the_cell(shell, monkeypatch) -> None:
    monkeypatch.setitem(requires.TOOLS, "frobnicator", f"{__name__}:present_tool")
    shell.run_cell_magic("requires", "frobnicator", "tool_ran = 1")
    assert shell.user_ns["tool_ran"] == 1


def test_every_tool_names_a_status_function_that_exists() -> None:
    for name, target in requires.TOOLS.items():
        module_name, function_name = target.split(":")
        assert callable(getattr(importlib.import_module(module_name), function_name)), name
