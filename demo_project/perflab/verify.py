"""Check that a lesson's committed ratios reproduce: run it again, compare comparison by comparison.

Every ``compare`` records its ratios in its output's metadata (``"perflab"``), with the
tolerance it declares (±30% by default). ``python -m perflab verify`` re-executes the lessons
without saving them, reads the same records from the fresh run, and prints a table of the
committed ratio, today's, the drift and the tolerance. Recorded figures (``"recorded": true``,
from another machine or version) are not this run's to reproduce, so they are left out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compare import TOLERANCE
from .formatting import describe_ratio

__all__ = ["Drift", "check_lessons", "format_table", "most_typical", "ratio_records", "unsteady"]

#: (cell index, comparison, candidate) -> (ratio, tolerance)
Records = dict[tuple[int, str, str], tuple[float, float]]


@dataclass(frozen=True)
class Drift:
    """Hold one ratio as committed and as measured again, and whether it held."""

    lesson: str
    cell: int
    comparison: str
    label: str
    committed: float
    now: float | None
    tolerance: float

    @property
    def drift(self) -> float:
        """Return how far today's ratio moved, as a fraction of the committed one."""
        if self.now is None or not self.committed:
            return math.inf
        return abs(self.now - self.committed) / self.committed

    @property
    def held(self) -> bool:
        """Return True when the ratio reproduced within its tolerance."""
        return self.drift <= self.tolerance


def ratio_records(notebook: Mapping[str, Any]) -> Records:
    """Return every ratio a notebook's outputs recorded, keyed by cell, comparison and label."""
    found: Records = {}
    for index, cell in enumerate(notebook.get("cells", [])):
        for output in cell.get("outputs", []):
            for record in output.get("metadata", {}).get("perflab", []):
                if record.get("recorded"):
                    continue
                tolerance = float(record.get("tolerance", TOLERANCE))
                for label, ratio in record.get("ratios", {}).items():
                    key = (index, str(record.get("comparison", "")), str(label))
                    found.setdefault(key, (float(ratio), tolerance))
    return found


def compare_records(lesson: str, committed: Records, now: Records) -> list[Drift]:
    """Return one Drift per committed ratio; a ratio the new run lacks has ``now=None``."""
    drifts = []
    for key, (ratio, tolerance) in committed.items():
        again = now.get(key)
        cell, comparison, label = key
        drifts.append(Drift(lesson, cell, comparison, label, ratio,
                            None if again is None else again[0], tolerance))
    return drifts


def check_lessons(paths: Iterable[Path], *, scale: str = "small") -> tuple[list[Drift], list[str]]:
    """Re-run each lesson (outputs not saved); return its drifts and any cell errors."""
    from .notebooks import execute_notebook

    drifts: list[Drift] = []
    errors: list[str] = []
    for path in paths:
        committed = ratio_records(json.loads(path.read_text(encoding="utf-8")))
        report = execute_notebook(path, scale=scale, write=False)
        errors += [f"{path.name}: {error}" for error in report.errors]
        drifts += compare_records(path.stem, committed, ratio_records(report.notebook))
    return drifts, errors


def format_table(drifts: list[Drift]) -> str:
    """Return the drift table: lesson, comparison, candidate, committed, now, drift, tolerance."""
    header = ("lesson", "comparison", "candidate", "committed", "now", "drift", "tolerance", "")
    rows = [header] + [
        (
            d.lesson[:2],
            _cut(d.comparison, 38),
            _cut(d.label, 30),
            describe_ratio(d.committed, times="x"),
            "missing" if d.now is None else describe_ratio(d.now, times="x"),
            "-" if math.isinf(d.drift) else f"{d.drift:.0%}",
            f"±{d.tolerance:.0%}",
            "ok" if d.held else "OVER",
        )
        for d in drifts
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    held = sum(d.held for d in drifts)
    lines.append(f"{held} of {len(drifts)} ratios reproduced within their tolerance.")
    return "\n".join(lines)



def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def most_typical(runs: list[Mapping[str, Any]]) -> int:
    """Return the index of the run whose ratios sit closest to the runs' medians.

    Each ratio's distance is measured on a log scale (2x faster and 2x slower are as far from
    1x). The kept run is the one whose farthest ratio is nearest its median: a re-run is checked
    ratio by ratio, so one outlier is what fails it. The sum of distances breaks ties.
    """
    records = [ratio_records(run) for run in runs]
    medians = _medians(records)

    def score(found: Records) -> tuple[float, float]:
        distances = [
            abs(math.log(found[key][0] / median))
            if key in found and found[key][0] > 0 else 10.0  # a ratio this run lacks
            for key, median in medians.items()
        ]
        return (max(distances, default=0.0), sum(distances))

    scores = [score(found) for found in records]
    return scores.index(min(scores))


def unsteady(runs: list[Mapping[str, Any]]) -> list[tuple[str, str, float, float]]:
    """Return the ratios whose runs spread wider than their tolerance around the median.

    One row per such ratio: comparison, candidate, lowest and highest ratio seen. These are the
    measurements a re-run is likely to miss, worth a longer measurement or a declared tolerance.
    """
    records = [ratio_records(run) for run in runs]
    rows = []
    for key, median in _medians(records).items():
        values = [r[key][0] for r in records if key in r]
        tolerance = next(r[key][1] for r in records if key in r)
        if any(abs(v - median) > tolerance * median for v in values):
            rows.append((key[1], key[2], min(values), max(values)))
    return rows


def _medians(records: list[Records]) -> dict[tuple[int, str, str], float]:
    medians = {}
    for key in set().union(*records):
        values = sorted(r[key][0] for r in records if key in r and r[key][0] > 0)
        if values:
            middle = len(values) // 2
            medians[key] = values[middle] if len(values) % 2 else math.sqrt(
                values[middle - 1] * values[middle]
            )
    return medians
