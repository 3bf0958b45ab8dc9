"""The performance budget: each lesson's wall time and whole-tree memory, kept for the README."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from perflab import budget

ROW = budget.Row("00-start-here", 12.3, 300, 200, 0)


def test_a_run_reports_time_and_the_memory_of_every_process_the_kernel_started(tmp_path) -> None:
    nb = nbformat.v4.new_notebook()
    # A child process holding 200 MB: the whole tree's peak counts it.
    nb.cells.append(nbformat.v4.new_code_cell(
        "import subprocess, sys\n"
        "subprocess.run([sys.executable, '-c', "
        "'import time; b = bytearray(200 * 2**20); b[::4096] = b\"x\" * len(b[::4096]); "
        "time.sleep(1.5)'], check=True)"
    ))
    path = tmp_path / "99-hold-memory.ipynb"
    nbformat.write(nb, path)
    (row,) = budget.run([path])
    assert row.lesson == "99-hold-memory" and row.errors == 0 and row.ok
    assert row.seconds > 1.5
    assert row.peak_tree_mb >= 200


def test_a_lesson_over_the_limit_or_failing_is_not_ok() -> None:
    assert not budget.Row("x", 1, budget.LIMIT_MB + 1, 100, 0).ok
    assert not budget.Row("x", 1, 100, 100, 2).ok
    assert ROW.ok


def test_the_record_and_the_readme_table_come_from_the_same_run(tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{budget.START}\nold\n{budget.END}\n\nafter\n")
    record = budget.write_record([ROW], scale="small", path=tmp_path / "budget.json")
    assert json.loads((tmp_path / "budget.json").read_text())["lessons"][0]["seconds"] == 12.3
    assert budget.write_readme(readme, record)
    text = readme.read_text()
    assert "| 00-start-here | 12 | 300 | 200 |" in text
    assert "old" not in text and text.endswith("\nafter\n")
    assert not budget.write_readme(readme, record)  # the same record changes nothing


def test_a_readme_without_the_markers_is_a_clear_error(tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="budget: start"):
        budget.write_readme(readme, {"source": {}, "lessons": []})


def test_the_repository_readme_has_the_budget_section() -> None:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert text.count(budget.START) == 1 and text.count(budget.END) == 1


def test_record_refuses_a_partial_run() -> None:
    result = subprocess.run([sys.executable, "-m", "perflab", "budget", "--record", "x.ipynb"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "without naming lessons" in result.stdout
