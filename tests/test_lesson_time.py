"""Lesson times are estimated from the lessons and a dry run, and shown where learners look."""

from __future__ import annotations

import json
import re
from pathlib import Path

from perflab import lesson_time, notebooks
from perflab.lesson_time import LessonTime, estimate, parts, record_run, time_line, write_time_line


def _md(text: str, cell_id: str = "x") -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": text}


def _code(text: str, tags: tuple[str, ...] = ()) -> dict:
    return {"cell_type": "code", "id": "c", "metadata": {"tags": list(tags)}, "source": text,
            "outputs": []}


def _words(n: int) -> str:
    return " ".join(["word"] * n)


def test_the_optional_part_runs_from_its_heading_to_the_exercises_plus_the_stretch() -> None:
    cells = [
        _md("# Title\n\n**Time**: old"), _md("## 1. Core"), _code("x = 1"),
        _md("## Optional part", "optional-part"), _md("## 7. More"), _code("y = 2"),
        _md("### Exercise 1 (core)"), _code("# your code"),
        _md("### Exercise 2 (stretch)"), _code("# stretch"),
        _md("## Key points\n\n- one"),
    ]
    assert list(parts(cells)) == [
        "core", "core", "core", "optional", "optional", "optional",
        "core", "core", "optional", "optional", "core",
    ]


def test_the_estimate_adds_reading_code_run_time_and_the_exercise_allowances() -> None:
    wpm, lpm = lesson_time.WORDS_PER_MINUTE, lesson_time.CODE_LINES_PER_MINUTE
    nb = {
        "metadata": {"perflab": {"run_seconds": {"core": 120.0, "optional": 0.0}}},
        "cells": [
            _md(_words(wpm * 10)),  # 10 minutes of prose
            _code("\n".join(["x = 1"] * lpm * 2) + "\n\n"),  # 2 minutes of code, blanks free
            _code("print('solution')\n" * 50, tags=("solution",)),  # hidden: not read
            _md("## Optional part", "optional-part"),
            _md(_words(wpm * 3)),
        ],
    }
    # core: 10 + 2 + 2 (run) + 10 (exercise) = 24 -> 25; optional: 3 + 15 (stretch) = 18 -> 20
    assert estimate(nb) == LessonTime(core=25, optional=20)


def test_a_run_s_cell_timings_become_seconds_per_part() -> None:
    def timed(cell: dict, start: str, end: str) -> dict:
        cell["metadata"]["execution"] = {
            "iopub.execute_input": f"2026-12-02T10:00:{start}Z",
            "shell.execute_reply": f"2026-12-02T10:00:{end}Z",
        }
        return cell

    nb = {"metadata": {}, "cells": [
        timed(_code("a"), "00.000000", "02.500000"),
        _md("## Optional part", "optional-part"),
        timed(_code("b"), "03.000000", "04.000000"),
        _code("never ran"),
    ]}
    record_run(nb)
    assert nb["metadata"]["perflab"]["run_seconds"] == {"core": 2.5, "optional": 1.0}


def test_the_time_line_is_rewritten_in_place_keeping_the_source_a_list() -> None:
    nb = {"metadata": {}, "cells": [_md("x"), _md("")]}
    nb["cells"][1]["source"] = ["## Overview\n", "\n", "**Time**: 45 min (typed by hand)\n", "end"]
    assert write_time_line(nb)
    source = nb["cells"][1]["source"]
    assert isinstance(source, list) and source[-1] == "end"
    assert time_line(estimate(nb)) + "\n" in source
    assert not write_time_line(nb)  # up to date: nothing to change


def test_every_lesson_and_the_readme_show_the_estimate() -> None:
    readme = notebooks.README.read_text()
    for number in (lesson_time.WORDS_PER_MINUTE, lesson_time.CODE_LINES_PER_MINUTE,
                   *lesson_time.EXERCISE_MINUTES.values()):
        assert str(number) in readme
    for path in notebooks.lesson_paths():
        nb = json.loads(path.read_text())
        assert "run_seconds" in nb["metadata"].get("perflab", {}), f"{path.name}: no dry run kept"
        time = estimate(nb)
        text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        assert time_line(time) in text, path.name
        row = re.search(rf"^\| \[[^\]]+\]\(notebooks/{re.escape(path.name)}\) \|.*$", readme,
                        re.MULTILINE)
        assert row, f"README has no row for {path.name}"
        assert row.group(0).endswith(f"| {time.core} + {time.optional} min |"), row.group(0)


def test_the_readme_table_is_rewritten_from_the_lessons(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("| [01 · One](notebooks/01-one.ipynb) | things | 30 min |\nafter\n")
    nb = {"metadata": {}, "cells": [_md(_words(lesson_time.WORDS_PER_MINUTE * 20))]}
    assert lesson_time.write_readme_table(readme, [(Path("01-one.ipynb"), nb)])
    row = "| [01 · One](notebooks/01-one.ipynb) | things | 30 + 15 min |"
    assert readme.read_text() == row + "\nafter\n"
