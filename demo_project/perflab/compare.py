"""Set measurements side by side: a table, a chart and sentences that carry their ratios.

``compare(..., interleave=True)`` times independent candidates again, round by round, so a
machine that speeds up or slows down meanwhile shifts them all alike. Every comparison records
its ratios (with a tolerance) in its output's metadata, for ``perflab verify``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from perflab import charts
from perflab.errors import PerflabError, UnknownChoice
from perflab.formatting import (
    describe_ratio,
    format_bytes,
    format_ms,
    format_ratio,
    plural,
    safe_ratio,
)
from perflab.measure import QUICK_REPEAT, Measurement, clock, quick, results, timed_rounds
from perflab.schema import current as current_schema
from perflab.schema import restore as restore_schema

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "TOLERANCE", "Comparison", "ComparisonRow", "Sentence", "compare", "html_table", "labelled",
    "ratio_record", "text_table",
]

#: An interleaved comparison of cheap candidates runs more rounds, as pyperf runs more
#: values: as many as fit in this many ms of timing per candidate, up to MAX_ROUNDS_FACTOR
#: times the measurements' own repeat. Nine rounds of 25 ms leave the best round of a
#: sub-millisecond call to luck on a shared machine; a few dozen make it repeat. Slow
#: candidates keep their own repeat.
INTERLEAVE_BUDGET_MS = 1500.0
MAX_ROUNDS_FACTOR = 4


#: How far a ratio may drift between two runs of a lesson before `perflab verify` calls it out.
TOLERANCE = 0.30


@dataclass(frozen=True)
class ComparisonRow:
    """Hold one line of a comparison table, for code that wants numbers rather than HTML."""

    label: str
    query_count: int
    best_ms: float
    median_ms: float
    max_ms: float
    speedup: float
    is_baseline: bool
    peak_bytes: int | None = None


class Comparison:
    """Set measurements side by side against a baseline; render a table, a chart, a sentence."""

    def __init__(
        self,
        measurements: Sequence[Measurement],
        *,
        baseline: Measurement,
        title: str | None = None,
        figure: Figure | None = None,
        tolerance: float = TOLERANCE,
    ) -> None:
        self.measurements = list(measurements)
        self.baseline = baseline
        self.title = title
        self.figure = figure
        self.tolerance = tolerance

    @property
    def rows(self) -> list[ComparisonRow]:
        """Return one row per measurement, for code that wants numbers, not HTML."""
        return [
            ComparisonRow(
                label=m.label,
                query_count=m.query_count,
                best_ms=m.best_ms,
                median_ms=m.median_ms,
                max_ms=m.max_ms,
                speedup=self.speedup(m),
                is_baseline=m is self.baseline,
                peak_bytes=m.peak_bytes,
            )
            for m in self.measurements
        ]

    def _find(self, which: str | Measurement) -> Measurement:
        return which if isinstance(which, Measurement) else labelled(
            self.measurements, which, "measurement")

    def speedup(self, which: str | Measurement) -> float:
        """Return baseline best / this best: above 1 is faster, below 1 is slower.

        Best rounds, not medians: on a shared or virtual machine a slow phase can cover half a
        measurement's rounds and move its median by a third, while the best round of an
        interleaved comparison repeats from one run of the lesson to the next.
        """
        return safe_ratio(self.baseline.best_ms, self._find(which).best_ms)

    def record(self, *which: str | Measurement) -> dict[str, Any]:
        """Return the ratios as data (all, or those of ``which``), for ``perflab verify``."""
        chosen = [self._find(w) for w in which] or [
            m for m in self.measurements if m is not self.baseline
        ]
        return ratio_record(self.title, self.measurements, self.baseline,
                            {m.label: self.speedup(m) for m in chosen}, self.tolerance)

    def sentence(self, which: str | Measurement) -> Sentence:
        """Return a sentence comparing ``which`` to the baseline; it displays as Markdown."""
        return Sentence(self._sentence_text(which), [self.record(which)])

    def sentences(self, *which: str | Measurement) -> Sentence:
        """Return one sentence per measurement (default: all but the baseline), one per line."""
        chosen = which or tuple(m for m in self.measurements if m is not self.baseline)
        return Sentence(
            "  \n".join(self._sentence_text(w) for w in chosen), [self.record(*chosen)]
        )

    def _sentence_text(self, which: str | Measurement) -> str:
        m = self._find(which)
        ratio = self.speedup(m)
        if m.query_count == self.baseline.query_count:
            counts = f"{plural(m.query_count, 'query', 'queries')} each"
        else:
            counts = f"{self.baseline.query_count} \u2192 {m.query_count} queries"
        if format_ratio(ratio) == "1":
            verdict = "about as fast as"
        elif ratio > 1:
            verdict = f"about {format_ratio(ratio)} times faster than"
        else:
            verdict = f"about {format_ratio(1 / ratio)} times slower than"
        return f"{m.label} is {verdict} {self.baseline.label} ({counts})."

    @property
    def _has_memory(self) -> bool:
        return any(m.peak_bytes is not None for m in self.measurements)

    def table(self) -> list[tuple[str, ...]]:
        """Return the table as text cells, the header first."""
        header: tuple[str, ...] = (
            "label", "queries", "best ms", "median ms", "slowest ms", "vs baseline"
        )
        if self._has_memory:
            header += ("peak memory",)
        return [header] + [
            (
                r.label,
                str(r.query_count),
                format_ms(r.best_ms),
                format_ms(r.median_ms),
                format_ms(r.max_ms),
                _speedup_cell(r),
            )
            + ((format_bytes(r.peak_bytes),) if self._has_memory else ())
            for r in self.rows
        ]

    def __str__(self) -> str:
        return text_table(self.title, self.table())

    def __repr__(self) -> str:
        return f"<Comparison of {', '.join(repr(m.label) for m in self.measurements)}>"

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        return (
            {"text/html": self._repr_html_(), "text/plain": str(self)},
            {"perflab": [self.record()]},
        )

    def _repr_html_(self) -> str:
        return html_table(self.title, self.table())


def labelled(items: Sequence[Any], label: str, kind: str) -> Any:
    """Return the item of ``items`` (measurements, load results) whose ``label`` is ``label``."""
    for item in items:
        if item.label == label:
            return item
    raise UnknownChoice(kind, label, [item.label for item in items])


def ratio_record(title: str | None, items: Sequence[Any], baseline: Any,
                 ratios: dict[str, float], tolerance: float) -> dict[str, Any]:
    """Return ratios against ``baseline`` as ``perflab verify`` reads them from an output."""
    return {
        "comparison": title or " vs ".join(item.label for item in items),
        "baseline": baseline.label,
        "ratios": {label: round(ratio, 4) for label, ratio in ratios.items()},
        "tolerance": tolerance,
    }


def text_table(title: str | None, table: list[tuple[str, ...]]) -> str:
    """Return text cells (the header first) as aligned plain text: labels left, figures right."""
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    lines = [title] if title else []
    for line in table:
        cells = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def html_table(title: str | None, table: list[tuple[str, ...]]) -> str:
    """Return text cells (the header first) as the HTML table a notebook shows."""
    e = html.escape
    header, *body = table
    caption = f"<caption>{e(title)}</caption>" if title else ""
    head = "".join(f"<th>{e(cell)}</th>" for cell in header)
    rows = "".join("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>"
                   for row in body)
    return (f"<table class='perflab-comparison'>{caption}<thead><tr>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table>")


class Sentence(str):
    """Hold prose rendered from a measurement: it shows as Markdown and carries its ratios."""

    records: list[dict[str, Any]]

    def __new__(cls, text: str, records: list[dict[str, Any]]) -> Sentence:
        sentence = super().__new__(cls, text)
        sentence.records = records
        return sentence

    def __add__(self, other: str) -> Sentence:
        return Sentence(str(self) + str(other), self.records + _records_of(other))

    def __radd__(self, other: str) -> Sentence:
        return Sentence(str(other) + str(self), _records_of(other) + self.records)

    def _repr_markdown_(self) -> str:
        return str(self)

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        return {"text/markdown": str(self), "text/plain": str(self)}, {"perflab": self.records}


def _records_of(text: str) -> list[dict[str, Any]]:
    return list(text.records) if isinstance(text, Sentence) else []


def _speedup_cell(row: ComparisonRow) -> str:
    return "baseline" if row.is_baseline else describe_ratio(row.speedup)



def _resolve(which: Measurement | str) -> Measurement:
    if isinstance(which, Measurement):
        return which
    try:
        return results[which]
    except KeyError:
        raise UnknownChoice("measurement", which, sorted(results)) from None


def compare(
    *measurements: Measurement | str,
    baseline: Measurement | str | None = None,
    title: str | None = None,
    chart: bool = True,
    interleave: bool = False,
    tolerance: float = TOLERANCE,
) -> Comparison:
    """Return a table (and chart) of measurements against a baseline, default the first one.

    Strings are looked up in ``results`` (filled by ``%%measure``). With ``interleave=True``,
    every measurement is timed again with the others, round by round, and those times replace
    its own; one that can't be run again (a ``with`` block, ``warmup=0``) raises PerflabError.
    Indexes added or dropped with ``lab.add_index``/``lab.drop_index`` between measurements
    are put back before each one's turn (untimed). Ask for it only when each candidate runs
    the same in the state the others leave otherwise: not across a setting changed or a cache
    warmed. With ``chart=True`` the
    bar chart is drawn, kept on ``.figure``, and shown inline under IPython.
    ``tolerance`` is how far a re-run's ratios may drift (``perflab verify``): a measurement
    that can't hold the default (a load test on shared cores) declares its own.
    """
    if not measurements:
        raise PerflabError("compare() needs at least one measurement.")
    resolved = [_resolve(m) for m in measurements]
    base = resolved[0] if baseline is None else _resolve(baseline)
    if all(m is not base for m in resolved):
        resolved.insert(0, base)
    if interleave:
        _interleave(resolved)
    comparison = Comparison(resolved, baseline=base, title=title, tolerance=tolerance)
    if chart:
        comparison.figure = charts.bar_chart(resolved, title=title, baseline=base)
        charts.show(comparison.figure, metadata={"perflab": [comparison.record()]})
    return comparison


def _interleave(measurements: Sequence[Measurement]) -> None:
    """Time the measurements again, round by round, each with the indexes it was measured with.

    Raise PerflabError when one can't be run again (a ``with`` block, ``warmup=0``, a single
    round, another timer or database): a comparison asked to interleave never quietly doesn't.
    """
    again = list(dict.fromkeys(measurements))  # a measurement listed twice is timed once
    for m in again:
        why = _not_rerunnable(m, again[0])
        if why:
            raise PerflabError(
                f"compare(..., interleave=True) can't time {m.label!r} again: {why}. "
                "Measure it with lab.measure(label, func) (warmup 1 or more, two rounds or "
                "more), or compare without interleave=True."
            )
    if len(again) < 2:
        return
    schemas = [m.schema for m in again]
    now = current_schema(again[0].using)
    if any(s is not None and s.database != now.database for s in schemas):
        raise PerflabError(
            "compare(..., interleave=True) runs the measurements again on the database Django "
            "uses now, and some were made on another one: compare them inside the same "
            "`with lab.using(...)` block they were measured in."
        )
    prepare: list[Callable[[], None] | None] = [
        None if s is None or len(set(schemas)) == 1 else partial(restore_schema, s, again[0].using)
        for s in schemas
    ]
    try:
        times, _ = timed_rounds(
            [(m.func, m.loops) for m in again if m.func is not None],
            interleaved_rounds(again),
            clock(again[0].timer),
            gc_on=any(m.gc_enabled for m in again),
            prepare=prepare,
        )
    finally:
        restore_schema(now, again[0].using)  # the indexes the lesson had before this cell
    for m, measured in zip(again, times, strict=True):
        m.times_ms = measured
        m.interleaved = True


def interleaved_rounds(measurements: Sequence[Measurement]) -> int:
    """Return how many rounds to interleave: the largest repeat, more when rounds are cheap.

    One round runs every candidate once (its ``loops`` calls), which costs about the sum of
    their best rounds; as many rounds as fit in ``INTERLEAVE_BUDGET_MS`` per candidate, at
    least the measurements' own repeat and at most ``MAX_ROUNDS_FACTOR`` times it; just
    ``QUICK_REPEAT`` when ``PERFLAB_QUICK=1`` (a test run, whose timings nobody reads).
    """
    repeat = max(m.repeat for m in measurements)
    if quick():
        return min(repeat, QUICK_REPEAT)
    round_ms = sum(m.loops * m.best_ms for m in measurements if m.times_ms)
    if not round_ms or round_ms != round_ms:  # nothing timed yet, or NaN
        return repeat
    budget_ms = INTERLEAVE_BUDGET_MS * len(measurements)
    return max(repeat, min(repeat * MAX_ROUNDS_FACTOR, int(budget_ms // round_ms)))


def _not_rerunnable(m: Measurement, first: Measurement) -> str:
    if m.func is None:
        return "it was a `with lab.measure(...)` block, which runs once"
    if m.warmup < 1:
        return "it was measured with warmup=0 (code that changes state runs only once per round)"
    if m.repeat < 2:
        return "it was measured in one round"
    if m.timer != first.timer:
        return f"it was timed on the {m.timer} clock, {first.label!r} on the {first.timer} clock"
    return ""
