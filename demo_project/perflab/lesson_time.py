"""How long a lesson takes a learner: estimated from the lesson and a dry run, never typed by hand.

A learner reads the prose, reads and runs each code cell and looks at what it printed, waits for
it, and does the exercises. Each is estimated from the lesson itself: prose at
``WORDS_PER_MINUTE``, code at ``CODE_LINES_PER_MINUTE``, the cells' own run time at ``small``
in a dry run (one clean run top to bottom, kept in the notebook's metadata), and a fixed
allowance per exercise (``EXERCISE_MINUTES``). Everything from the ``## Optional part`` heading
to the exercises, and the stretch exercise, is optional. ``python -m perflab notebooks`` (and
``python -m perflab times``, a dry run that writes nothing else) writes the estimate into each
lesson's ``**Time**`` line and into the README's lesson table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "CODE_LINES_PER_MINUTE",
    "EXERCISE_MINUTES",
    "WORDS_PER_MINUTE",
    "LessonTime",
    "estimate",
    "parts",
    "record_run",
    "time_line",
    "write_readme_table",
    "write_time_line",
]

WORDS_PER_MINUTE = 130  # technical prose, read with care
CODE_LINES_PER_MINUTE = 8  # read the cell, run it, look at what it printed
EXERCISE_MINUTES = {"core": 10, "stretch": 15}
_TIME_LINE = re.compile(r"^\*\*Time\*\*: .*$", re.MULTILINE)
_WORD = re.compile(r"[A-Za-z0-9_']+")


def _source(cell: Any) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def parts(cells: Iterable[Any]) -> Iterator[str]:
    """Yield, for each cell, the part of the lesson it belongs to: core or optional."""
    part = "core"
    for cell in cells:
        text = _source(cell).lstrip()
        if cell.get("id") == "optional-part" or text.startswith("## Optional part"):
            part = "optional"
        elif text.startswith("### Exercise 1"):
            part = "core"
        elif text.startswith("### Exercise 2"):
            part = "optional"
        elif text.startswith("## Key points"):
            part = "core"
        yield part


@dataclass(frozen=True)
class LessonTime:
    """Minutes a learner needs for a lesson's core and for its optional part."""

    core: int
    optional: int


def _round_up(minutes: float) -> int:
    return max(5, 5 * math.ceil(minutes / 5))


def estimate(nb: Any) -> LessonTime:
    """Estimate a lesson's time from its text and the run time its metadata keeps."""
    minutes = {"core": 0.0, "optional": 0.0}
    for cell, part in zip(nb["cells"], parts(nb["cells"]), strict=True):
        text = _source(cell)
        if cell["cell_type"] == "markdown":
            minutes[part] += len(_WORD.findall(text)) / WORDS_PER_MINUTE
        elif cell["cell_type"] == "code" and "solution" not in cell["metadata"].get("tags", []):
            lines = [line for line in text.splitlines() if line.strip()]
            minutes[part] += len(lines) / CODE_LINES_PER_MINUTE
    run = nb["metadata"].get("perflab", {}).get("run_seconds", {})
    for part in minutes:
        minutes[part] += run.get(part, 0.0) / 60
    minutes["core"] += EXERCISE_MINUTES["core"]
    minutes["optional"] += EXERCISE_MINUTES["stretch"]
    return LessonTime(_round_up(minutes["core"]), _round_up(minutes["optional"]))


def record_run(nb: Any) -> None:
    """Keep an executed notebook's run time per part (from nbclient's cell timings) in its metadata.

    Needs ``record_timing=True``; the per-cell timestamps themselves are dropped on save.
    """
    seconds = {"core": 0.0, "optional": 0.0}
    for cell, part in zip(nb["cells"], parts(nb["cells"]), strict=True):
        timing = cell.get("metadata", {}).get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if start and end:
            elapsed = datetime.fromisoformat(end) - datetime.fromisoformat(start)
            seconds[part] += elapsed.total_seconds()
    nb["metadata"].setdefault("perflab", {})["run_seconds"] = {
        part: round(value, 1) for part, value in seconds.items()
    }


def time_line(time: LessonTime) -> str:
    """Return the lesson's ``**Time**`` line."""
    return (
        f"**Time**: {time.core} min for the core, {time.optional} min more for the optional "
        "part and the stretch exercise (estimated from this lesson and a dry run; the README "
        "says how)"
    )


def write_time_line(nb: Any) -> bool:
    """Put the estimate in the lesson's ``**Time**`` line; return whether the text changed."""
    line = time_line(estimate(nb))
    for cell in nb["cells"]:
        text = _source(cell)
        if cell["cell_type"] == "markdown" and _TIME_LINE.search(text):
            new = _TIME_LINE.sub(line, text, count=1)
            if new == text:
                return False
            # Keep the form the file had: nbformat writes a source as a list of lines.
            as_list = isinstance(cell["source"], list)
            cell["source"] = new.splitlines(keepends=True) if as_list else new
            return True
    return False


def write_readme_table(readme: Path, lessons: Iterable[tuple[Path, Any]]) -> bool:
    """Put each lesson's estimate in the last column of its README table row."""
    text = readme.read_text()
    new = text
    for path, nb in lessons:
        time = estimate(nb)
        row = re.compile(rf"^(\| \[[^\]]+\]\(notebooks/{re.escape(path.name)}\) \|.*\| )[^|]*\|$",
                         re.MULTILINE)
        new = row.sub(lambda m, t=time: f"{m.group(1)}{t.core} + {t.optional} min |", new)
    if new != text:
        readme.write_text(new)
    return new != text
