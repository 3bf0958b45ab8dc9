"""The performance budget: how long each lesson runs and how much memory it takes, servers included.

``python -m perflab budget`` runs every lesson once at ``small`` (or the lessons named) in a
fresh kernel, without saving its outputs, and samples the memory of the kernel and everything it
started (``perflab.footprint``): the figure Binder's limit applies to. It prints one row per
lesson and fails when a lesson errs or goes over ``LIMIT_MB``. ``--record`` keeps the run in
``notebooks/recorded/budget.json`` (with the machine and date it came from) and rewrites the
README's budget table from it, so the README's figures are a recorded run, never typed.
"""

from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perflab.recorded import RECORDED_DIR

__all__ = ["LIMIT_MB", "Row", "readme_table", "run", "table", "write_readme", "write_record"]

#: Each lesson's whole process tree must fit here (Binder gives 1-2 GB).
LIMIT_MB = 1024
RECORD = RECORDED_DIR / "budget.json"
START, END = "<!-- budget: start -->", "<!-- budget: end -->"


@dataclass(frozen=True)
class Row:
    """One lesson's run: its wall time, peak memory (whole tree and kernel alone), and errors."""

    lesson: str
    seconds: float
    peak_tree_mb: float
    peak_kernel_mb: float
    errors: int

    @property
    def ok(self) -> bool:
        return not self.errors and self.peak_tree_mb <= LIMIT_MB


def run(paths: list[Path], *, scale: str = "small") -> list[Row]:
    """Run each lesson once, sampling its process tree; print each row as it finishes."""
    from perflab import notebooks

    rows = []
    print(table([]).splitlines()[0], flush=True)
    for path in paths:
        report = notebooks.execute_notebook(path, scale=scale, write=False, footprint=True)
        row = Row(path.stem, round(report.seconds, 1), round(report.peak_tree_mb),
                  round(report.peak_rss_mb), len(report.errors))
        rows.append(row)
        print(_line(row), flush=True)
    return rows


def _line(row: Row) -> str:
    verdict = "ok" if row.ok else ("FAILED" if row.errors else "OVER")
    return (f"{row.lesson:<40} {row.seconds:>7.0f} {row.peak_tree_mb:>9.0f} "
            f"{row.peak_kernel_mb:>9.0f}  {verdict}")


def table(rows: list[Row]) -> str:
    """Return the rows as aligned text, a header first and a total last."""
    lines = [f"{'lesson':<40} {'wall s':>7} {'tree MB':>9} {'kernel MB':>9}  budget"]
    lines += [_line(row) for row in rows]
    if rows:
        lines.append(f"{'all lessons':<40} {sum(r.seconds for r in rows):>7.0f} "
                     f"{max(r.peak_tree_mb for r in rows):>9.0f} "
                     f"{max(r.peak_kernel_mb for r in rows):>9.0f}  (time: sum; memory: max)")
    return "\n".join(lines)


def write_record(rows: list[Row], *, scale: str, path: Path = RECORD) -> dict[str, Any]:
    """Keep this run, with where and when it was measured, as the committed budget."""
    record = {
        "source": {
            "date": datetime.now(UTC).date().isoformat(),
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}",
            "cpus": os.cpu_count(),
            "scale": scale,
            "limit_mb": LIMIT_MB,
        },
        "lessons": [asdict(row) for row in rows],
    }
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


def readme_table(record: dict[str, Any]) -> str:
    """Return the README's budget section body: a Markdown table and where it came from."""
    s = record["source"]
    lines = [
        f"Recorded by `python -m perflab budget --record` on {s['date']}: {s['machine']}, "
        f"{s['cpus']} CPUs, Python {s['python']}, scale `{s['scale']}`. Memory is the whole "
        f"process tree (kernel, servers, workers, browser); each lesson must stay under "
        f"{s['limit_mb']} MB.",
        "",
        "| Lesson | Run time (s) | Peak memory, whole tree (MB) | Kernel alone (MB) |",
        "|--------|-------------:|-----------------------------:|------------------:|",
    ]
    lines += [
        f"| {row['lesson']} | {row['seconds']:.0f} | {row['peak_tree_mb']:.0f} | "
        f"{row['peak_kernel_mb']:.0f} |"
        for row in record["lessons"]
    ]
    return "\n".join(lines)


def write_readme(readme: Path, record: dict[str, Any]) -> bool:
    """Replace the README's text between the budget markers; return whether it changed."""
    text = readme.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{readme.name} has no {START} ... {END} section for the budget table")
    new = pattern.sub(lambda _: f"{START}\n{readme_table(record)}\n{END}", text)
    if new != text:
        readme.write_text(new)
    return new != text
