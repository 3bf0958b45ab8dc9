"""The lessons themselves: navigation generated from titles, every lesson within Binder's memory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from perflab import notebooks

LESSONS = notebooks.lesson_paths()


def _lesson(path: Path, title: str, *, nav: bool = True) -> None:
    nb = nbformat.v4.new_notebook()
    if nav:
        nb.cells.append(nbformat.v4.new_markdown_cell(notebooks.NAV_MARKER + "\nold"))
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {title}\n\nText."))
    nb.cells.append(nbformat.v4.new_code_cell("print(6 * 7)"))
    nbformat.write(nb, path)


def test_navigation_links_each_lesson_to_its_neighbours(tmp_path: Path) -> None:
    _lesson(tmp_path / "00-start.ipynb", "Start here")
    _lesson(tmp_path / "01-fix.ipynb", "Fix N+1 queries", nav=False)
    _lesson(tmp_path / "02-work.ipynb", "Let the database work")
    paths = notebooks.lesson_paths(tmp_path)
    assert notebooks.update_navigation(paths) == paths
    middle = json.loads((tmp_path / "01-fix.ipynb").read_text())["cells"][0]["source"]
    assert middle == (
        f"{notebooks.NAV_MARKER}\n[< 00 · Start here](00-start.ipynb) | "
        f"{notebooks.CONTENTS_LINK} | [02 · Let the database work >](02-work.ipynb)"
    )
    assert notebooks.update_navigation(paths) == []  # already up to date: nothing rewritten


def test_committed_lessons_have_up_to_date_navigation(tmp_path: Path) -> None:
    copies = []
    for path in LESSONS:
        shutil.copy(path, tmp_path / path.name)
        copies.append(tmp_path / path.name)
    assert notebooks.update_navigation(copies) == [], "run `make notebooks`"


def test_lessons_follow_the_template() -> None:
    for path in LESSONS:
        nb = json.loads(path.read_text())
        text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        for heading in ("## Overview", "## Prerequisites", "## Setup", "## Key points",
                        "### What's next?", "### Resources", "**Time**"):
            assert heading in text, f"{path.name} lacks {heading}"
        tags = [t for c in nb["cells"] for t in c.get("metadata", {}).get("tags", [])]
        assert "nbval-check-output" in tags, f"{path.name} checks no fact"
        assert "solution" in tags, f"{path.name} has no solution cell"


def test_committed_outputs_come_from_one_clean_run() -> None:
    for path in LESSONS:
        nb = json.loads(path.read_text())
        counts = [c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"]
        assert counts == list(range(1, len(counts) + 1)), f"{path.name}: run `make notebooks`"
        for cell in nb["cells"]:
            for output in cell.get("outputs", []):
                assert output["output_type"] != "error", f"{path.name} committed an error"
            if "solution" in cell["metadata"].get("tags", []):
                assert cell["metadata"]["jupyter"]["source_hidden"] is True


def test_execute_notebook_reports_errors_and_peak_memory(tmp_path: Path) -> None:
    path = tmp_path / "00-broken.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# Break things"))
    nb.cells.append(nbformat.v4.new_code_cell("1 / 0"))
    nbformat.write(nb, path)
    report = notebooks.execute_notebook(path, write=False, timeout=120)
    assert report.errors and "ZeroDivisionError" in report.errors[0]
    assert report.peak_rss_mb > 10


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is Linux's")
def test_a_kernel_s_own_peak_is_not_its_launcher_s(tmp_path: Path) -> None:
    path = tmp_path / "00-small.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    nbformat.write(nb, path)
    ballast = bytearray(400 * 1024 * 1024)  # the launcher's peak, which Linux's getrusage
    ballast[::4096] = b"x" * len(ballast[::4096])  # passes on across exec
    report = notebooks.execute_notebook(path, write=False, timeout=120)
    assert report.peak_rss_mb < 300, report.peak_rss_mb
    del ballast


def test_runs_whose_timings_are_kept_never_run_quick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "00-quick.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("import os; print(os.environ.get('PERFLAB_QUICK'))"))
    nbformat.write(nb, path)
    monkeypatch.setenv("PERFLAB_QUICK", "1")
    report = notebooks.execute_notebook(path, write=False, timeout=120)
    assert report.notebook.cells[0].outputs[0]["text"] == "None\n"
    assert os.environ["PERFLAB_QUICK"] == "1"  # put back for whoever called


@pytest.fixture(scope="module")
def lesson_01(tmp_path_factory: pytest.TempPathFactory) -> notebooks.ExecutionReport:
    """Run lesson 01 once, top to bottom at the small scale, for the Django-version test below.

    Every lesson's memory is checked during nbval's own run (notebooks/conftest.py), so no
    lesson needs a second run just for that.
    """
    path = notebooks.NOTEBOOKS / "01-fix-n-plus-one-queries.ipynb"
    copy = tmp_path_factory.mktemp("lessons") / path.name
    shutil.copy(path, copy)
    return notebooks.execute_notebook(copy, scale="small", write=False)


@pytest.mark.slow
def test_fetch_modes_are_measured_on_django_61_and_declined_before(lesson_01) -> None:
    import django

    assert lesson_01.errors == []
    peers, blocked, page = lesson_01.outputs_of("django-6.1")
    if django.VERSION >= (6, 1):
        assert "FETCH_ONE (default)  queries: 101" in peers
        assert "FETCH_PEERS          queries: 2" in peers
        assert "FieldFetchBlocked: Fetching of Product.category blocked." in blocked
        assert "with select_related: 100 rows, nothing blocked" in blocked
        assert page.startswith("103 queries") and "100 similar" in page
    else:  # Django 5.2: an honest "not here", and no numbers at all
        has = f"this kernel has Django {django.__version__}"
        skipped = f"Skipped: this cell needs django>=6.1; {has}.\n"
        assert [peers, blocked, page] == [skipped] * 3


def _stream_texts(nb: dict, tag: str) -> list[str]:
    """Return what each cell tagged ``tag`` printed, in a notebook read as plain JSON."""
    return ["".join("".join(o.get("text", "")) for o in cell.get("outputs", [])
                    if o.get("output_type") == "stream")
            for cell in nb["cells"] if tag in cell.get("metadata", {}).get("tags", [])]


@pytest.mark.slow
def test_fetch_raise_catches_the_refactor_on_django_61_and_is_recorded_for_52(
    tmp_path: Path,
) -> None:
    """Lesson 24's FETCH_RAISE guard: run on Django 6.1; on 5.2 an honest skip and the record."""
    import django

    path = notebooks.NOTEBOOKS / "24-lock-in-the-wins.ipynb"
    recorded = notebooks.NOTEBOOKS / "recorded" / "fetch-raise-in-tests.json"
    record = json.loads(recorded.read_text())
    assert record["source"]["django"].startswith("6.1")
    assert [m["query_count"] for m in record["measurements"]] == [3, 3]
    if django.VERSION >= (6, 1):
        copy = tmp_path / path.name
        shutil.copy(path, copy)
        report = notebooks.execute_notebook(copy, scale="small", write=False)
        assert report.errors == []
        in_tests, in_kernel = report.outputs_of("django-6.1")
        assert in_tests == (
            "The page as it is:\n1 passed\nAfter the refactor:\n"
            "FAILED test_product_list_loads_nothing_lazily\n"
            "  django.core.exceptions.FieldFetchBlocked: Fetching of Product.category blocked.\n"
            "1 failed\n"
        )
        assert "after the refactor, FETCH_RAISE (raises)   queries: 3" in in_kernel
        assert "FieldFetchBlocked: Fetching of Product.category blocked." in in_kernel
    else:  # the committed run, made on 5.2: the cells declined, and ran nothing
        has = f"this kernel has Django {django.__version__}"
        skipped = f"Skipped: this cell needs django>=6.1; {has}.\n"
        assert _stream_texts(json.loads(path.read_text()), "django-6.1") == [skipped] * 2


# What a committed output must not show: it would differ on every machine and every run.
NOISE = {
    "a home folder": r"/(?:root|home/[\w.-]+|Users/[\w.-]+)/",
    "a temporary or state path": r"/tmp/|\.cache/perflab|/run/user/",
    "a loopback port": r"(?:127\.0\.0\.1|localhost):\d{2,5}",
    "a process id": r"\bpid[ =:]+\d+",
    "a socket file": r"\.s\.PGSQL\.\d+|[\w-]+\.sock\b",
    "a library's file and line": r"site-packages|[\w/]+\.py:\d+",
    "a connection URL": r"postgresql(?:\+\w+)?://",
}


def test_committed_outputs_hold_no_paths_pids_ports_or_file_lines() -> None:
    import re

    for path in LESSONS:
        nb = json.loads(path.read_text())
        for index, cell in enumerate(nb["cells"]):
            for output in cell.get("outputs", []):
                texts = [output.get("text", "")] + [
                    value for key, value in output.get("data", {}).items()
                    if key.startswith("text/")
                ]
                text = "".join("".join(t) if isinstance(t, list) else t for t in texts)
                for what, pattern in NOISE.items():
                    match = re.search(pattern, text)
                    assert match is None, f"{path.name}, cell {index}: {what}: {match.group(0)!r}"


def test_nbval_fails_a_lesson_over_the_memory_budget_and_lists_every_peak(tmp_path: Path) -> None:
    shutil.copy(notebooks.NOTEBOOKS / "conftest.py", tmp_path / "conftest.py")
    for name, megabytes in [("10-light", 0), ("11-heavy", 300)]:
        nb = nbformat.v4.new_notebook()
        nb.cells.append(nbformat.v4.new_code_cell(f"block = bytearray({megabytes} * 2**20)\n"
                                                  "block[::4096] = b'x' * len(block[::4096])"))
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
    env = {**os.environ, "PERFLAB_KERNEL_LIMIT_MB": "250"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert run.returncode == 1, run.stdout
    assert "11-heavy.ipynb: the lesson peaked at" in run.stdout
    assert "its kernel alone at" in run.stdout  # the heavy kernel's own peak rose
    assert "10-light.ipynb: the lesson peaked" not in run.stdout
    summary = run.stdout.split("peak of each lesson's process tree", 1)[1]
    assert "10-light.ipynb" in summary and "11-heavy.ipynb" in summary
