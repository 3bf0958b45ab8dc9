"""The cheat sheet and the glossary: generated from the lessons, never edited by hand."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from perflab import PerflabError, handouts, notebooks

LESSONS = notebooks.lesson_paths()


def _lesson(path: Path, title: str, key_points: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {title}\n\nText."))
    nb.cells.append(nbformat.v4.new_markdown_cell(key_points))
    nbformat.write(nb, path)
    return path


KEY_POINTS = """## Key points

- First point,
  on two lines.
- Second point.

### Terms

- **Keyset pagination**: ask for the rows after the last one seen;
  the same cost at any depth.
- **`annotate`**: a value per object.

### What's next?

Lesson 2."""


def test_handouts_gather_key_points_and_terms(tmp_path: Path) -> None:
    one = _lesson(tmp_path / "01-one.ipynb", "One", KEY_POINTS)
    two = _lesson(tmp_path / "02-two.ipynb", "Two",
                  "## Key points\n\n- Only point.\n\n### Terms\n\n"
                  "- **Cursor**: where a keyset page starts.\n\n### What's next?\n\nNothing.")
    sheet = handouts.cheat_sheet([one, two])
    assert ("## [01 · One](01-one.ipynb)\n\n- First point,\n  on two lines.\n- Second point.\n"
            in sheet)
    assert "## [02 · Two](02-two.ipynb)\n\n- Only point.\n" in sheet
    assert "Keyset" not in sheet and "What's next" not in sheet
    glossary = handouts.glossary([one, two])
    entries = [line for line in glossary.splitlines() if line.startswith("<a id=")]
    assert [e.split("**")[1] for e in entries] == ["`annotate`", "Cursor", "Keyset pagination"]
    assert ('<a id="keyset-pagination"></a>**Keyset pagination**: ask for the rows after the last '
            "one seen; the same cost at any depth. ([01 · One](01-one.ipynb))") in entries
    assert handouts.write_handouts([one, two], tmp_path) == [
        tmp_path / handouts.CHEAT_SHEET, tmp_path / handouts.GLOSSARY]
    assert handouts.write_handouts([one, two], tmp_path) == []  # up to date: nothing rewritten


def test_a_term_defined_twice_or_malformed_is_an_error(tmp_path: Path) -> None:
    one = _lesson(tmp_path / "01-one.ipynb", "One", KEY_POINTS)
    again = _lesson(tmp_path / "02-again.ipynb", "Again", KEY_POINTS)
    with pytest.raises(PerflabError, match="defined twice"):
        handouts.glossary([one, again])
    bad = _lesson(tmp_path / "03-bad.ipynb", "Bad", "## Key points\n\n- x\n\n### Terms\n\n"
                  "- Keyset: no bold term\n\n### What's next?\n")
    with pytest.raises(PerflabError, match="a term must read"):
        handouts.glossary([bad])


def test_committed_handouts_are_up_to_date(tmp_path: Path) -> None:
    for name in (handouts.CHEAT_SHEET, handouts.GLOSSARY):
        committed = (notebooks.NOTEBOOKS / name).read_text(encoding="utf-8")
        generated = (handouts.cheat_sheet if name == handouts.CHEAT_SHEET else handouts.glossary)(
            LESSONS
        )
        assert committed == generated, (
            f"{name} is stale: run `python -m perflab notebooks --no-execute`"
        )


def test_every_lesson_states_questions_objectives_and_terms() -> None:
    for path in LESSONS:
        nb = json.loads(path.read_text())
        assert handouts.terms(nb, path.name), f"{path.name} defines no term under ### Terms"
        overview = next("".join(c["source"]) for c in nb["cells"]
                        if "".join(c["source"]).startswith("## Overview"))
        assert "**Questions**" in overview and "**Objectives**" in overview, path.name


def test_every_lesson_asks_for_a_prediction_and_has_two_checked_exercises() -> None:
    for path in LESSONS:
        nb = json.loads(path.read_text())
        text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        assert "**Predict first.**" in text, f"{path.name} asks for no prediction"
        for heading in ("### Exercise 1 (core)", "### Exercise 2 (stretch)"):
            assert heading in text, f"{path.name} lacks {heading}"
        solutions = [c for c in nb["cells"] if "solution" in c["metadata"].get("tags", [])]
        assert len(solutions) >= 2, f"{path.name}: each exercise needs a hidden running solution"
        assert all("check" in "".join(c["source"]) for c in solutions), path.name
