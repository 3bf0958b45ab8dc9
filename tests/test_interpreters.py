"""Lesson 16's toolkit: find PyPy, run scripts under two interpreters, keep each call's time."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from perflab import interpreters
from perflab.errors import PerflabError, ServiceUnavailable
from perflab.interpreters import Interpreter, Interpreters, find_pypy, pypy_status, run_script
from perflab.requires import requirement_met

CPYTHON = Interpreter("CPython", sys.executable, "CPython", "3.11.0")

#: A script that follows the lesson's protocol: it prints each call's ms and its answer.
SCRIPT = """
import json, sys
calls = int(sys.argv[1])
print(json.dumps({"times_ms": [10.0 * (calls - i) for i in range(calls)], "answer": [1, 2]}))
"""


def test_pypy_status_names_the_install_command_when_pypy_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("PERFLAB_PYPY", raising=False)
    ok, why = pypy_status()
    assert not ok
    assert "no pypy3 or pypy on PATH" in why
    assert "sudo apt install pypy3" in why and "brew install pypy3" in why
    assert "\n" not in why


def test_pypy_status_refuses_an_override_that_is_not_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERFLAB_PYPY", str(tmp_path / "nowhere"))
    ok, why = pypy_status()
    assert not ok and "PERFLAB_PYPY=" in why and "is not a file" in why


def test_pypy_status_refuses_a_binary_that_is_cpython(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFLAB_PYPY", sys.executable)
    ok, why = pypy_status()
    assert not ok and "is CPython, not PyPy" in why


def test_requires_pypy3_skips_for_a_learner_and_fails_in_strict_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("PERFLAB_PYPY", raising=False)
    monkeypatch.delenv("PERFLAB_STRICT", raising=False)
    met, why = requirement_met("pypy3")
    assert not met and why.startswith("Skipped: this cell needs pypy3.")
    monkeypatch.setenv("PERFLAB_STRICT", "1")
    with pytest.raises(ServiceUnavailable, match="pypy3 is missing"):
        requirement_met("pypy3")


@pytest.mark.skipif(find_pypy() is None, reason="PyPy is not installed here")
def test_pypy_status_accepts_a_working_pypy() -> None:
    assert pypy_status() == (True, "")
    found = interpreters.probe(find_pypy() or "", "PyPy")
    assert found.implementation == "PyPy" and found.version_tuple >= (3,)


def test_run_script_reports_the_child_peak_memory_not_this_process(tmp_path: Path) -> None:
    ballast = bytearray(200 * 2**20)  # this process is large; a child started from it is not
    ballast[::4096] = b"x" * len(ballast[::4096])
    small = run_script(CPYTHON, ["-c", "pass"])
    touch = "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096])"
    large = run_script(CPYTHON, ["-c", touch])
    del ballast
    assert small.peak_bytes is not None and large.peak_bytes is not None
    assert small.peak_bytes < 100 * 2**20
    assert large.peak_bytes > 300 * 2**20
    assert small.wall_ms > 0


def test_run_script_shows_the_end_of_stderr_when_the_script_fails() -> None:
    with pytest.raises(PerflabError, match=r"exited with 3 .*\n.*boom"):
        run_script(CPYTHON, ["-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])


def test_run_script_stops_a_script_that_runs_past_its_timeout() -> None:
    with pytest.raises(PerflabError, match="ran past"):
        run_script(CPYTHON, ["-c", "import time; time.sleep(30)"], timeout=0.5)


def test_race_keeps_first_calls_apart_from_warmed_up_calls(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    other = Interpreter("Other", sys.executable, "CPython", "3.11.0")
    race = Interpreters().race(script, 4, calls=4, rounds=2, title="t",
                               interpreters=[CPYTHON, other])
    assert race.labels == ["CPython", "Other"]
    assert race.answers_equal() and race.answer() == [1, 2]
    assert race.per_call_ms("Other") == [40.0, 30.0, 20.0, 10.0]
    labels = [m.label for m in race.measurements()]
    assert labels == ["CPython, warmed up", "Other, first call", "Other, warmed up"]
    assert race.measurement("Other", first_call=True).times_ms == [40.0, 40.0]
    assert race.measurement("Other").times_ms == [20.0, 10.0, 20.0, 10.0]  # the later half
    assert [len(m.times_ms) for m in race.whole_runs()] == [2, 2]
    comparison = race.compare(chart=False)
    assert comparison.speedup("Other, warmed up") == pytest.approx(1.0)
    assert comparison.record()["comparison"] == "t"


def test_race_refuses_a_script_that_reports_other_calls(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    with pytest.raises(PerflabError, match="reported 2 calls, not 3"):
        Interpreters().race(script, 2, calls=3, rounds=1, title="t", interpreters=[CPYTHON])


def test_start_up_compares_empty_processes_with_their_memory() -> None:
    comparison = Interpreters().start_up(rounds=2, interpreters=[CPYTHON])
    (row,) = comparison.rows
    assert row.label == "CPython: start, exit" and row.peak_bytes
