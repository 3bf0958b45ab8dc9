"""Set load tests side by side: throughput, latency and CPU, with ratios ``perflab verify`` checks.

``compare_loads(*results)`` is ``lab.compare`` for ``LoadResult``s: a table of requests per
second, p50/p95, failures and the cores the server used, each row's throughput against the
baseline's, and sentences rendered from them. Its output carries the throughput ratios in its
metadata, as ``Comparison`` does, so a re-run of the lesson must reproduce them. A row the
lesson knows to swing from run to run (and says why) is passed as ``unsteady``: the table
marks it and its ratio is not recorded.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from perflab.compare import TOLERANCE, Sentence, html_table, labelled, ratio_record, text_table
from perflab.errors import PerflabError
from perflab.formatting import describe_ratio, format_ratio, safe_ratio
from perflab.load import LoadResult, failure_lines

__all__ = ["LoadComparison", "compare_loads"]

_HEADER = ("label", "requests/s", "p50 ms", "p95 ms", "failed", "server cores", "vs baseline")


@dataclass(frozen=True)
class LoadComparison:
    """Hold load results against a baseline: a table that shows as HTML and records its ratios."""

    results: Sequence[LoadResult]
    baseline: LoadResult
    title: str | None = None
    tolerance: float = TOLERANCE
    unsteady: frozenset[str] = frozenset()

    def find(self, which: str | LoadResult) -> LoadResult:
        """Return the result labelled ``which`` (or ``which`` itself)."""
        return which if isinstance(which, LoadResult) else labelled(
            self.results, which, "load result")

    def ratio(self, which: str | LoadResult) -> float:
        """Return this result's requests per second over the baseline's: above 1 serves more."""
        return safe_ratio(self.find(which).rps, self.baseline.rps)

    def record(self, *which: str | LoadResult) -> dict[str, Any]:
        """Return the throughput ratios (all, or those of ``which``) for ``perflab verify``."""
        chosen = [self.find(w) for w in which] or [
            r for r in self.results if r is not self.baseline and r.label not in self.unsteady
        ]
        return ratio_record(self.title, self.results, self.baseline,
                            {r.label: self.ratio(r) for r in chosen}, self.tolerance)

    def sentence(self, which: str | LoadResult) -> Sentence:
        """Return a sentence on ``which``'s throughput against the baseline's (Markdown)."""
        result = self.find(which)
        ratio = self.ratio(result)
        if format_ratio(ratio) == "1":
            verdict = "about as many requests a second as"
        elif ratio > 1:
            verdict = f"about {format_ratio(ratio)} times the requests a second of"
        else:
            verdict = f"about {format_ratio(1 / ratio)} times fewer requests a second than"
        text = (
            f"{result.label} served {verdict} {self.baseline.label} "
            f"({self.baseline.rps:,.0f} \u2192 {result.rps:,.0f}; p95 "
            f"{self.baseline.p95_ms:,.0f} \u2192 {result.p95_ms:,.0f} ms)."
        )
        return Sentence(text, [] if result.label in self.unsteady else [self.record(result)])

    def rows(self) -> list[tuple[str, ...]]:
        """Return the table's rows as text, the header first."""
        rows = [_HEADER]
        for r in self.results:
            cores = "-" if r.server_cpu is None else f"{r.server_cpu:.2f}"
            versus = "baseline" if r is self.baseline else describe_ratio(self.ratio(r))
            versus = versus.replace("faster", "more").replace("slower", "fewer")
            if r.label in self.unsteady:
                versus += " (unsteady)"
            label = r.label + (" (generator saturated)" if r.generator_saturated else "")
            rows.append((label, f"{r.rps:,.1f}", f"{r.p50_ms:,.0f}", f"{r.p95_ms:,.0f}",
                         f"{r.failures:,}", cores, versus))
        return rows

    def failure_lines(self) -> list[str]:
        """Return why requests failed, one line per distinct failure (none when none did)."""
        return failure_lines(self.results)

    def __str__(self) -> str:
        table = text_table(self.title, self.rows())
        reasons = self.failure_lines()
        return table + "".join(f"\n  failed: {line}" for line in reasons)

    def _repr_html_(self) -> str:
        reasons = self.failure_lines()
        footer = "".join(f"<p>failed: {html.escape(line)}</p>" for line in reasons)
        return html_table(self.title, self.rows()) + footer

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        return (
            {"text/html": self._repr_html_(), "text/plain": str(self)},
            {"perflab": [self.record()]},
        )


def compare_loads(
    *results: LoadResult,
    baseline: LoadResult | str | None = None,
    title: str | None = None,
    tolerance: float = TOLERANCE,
    unsteady: Iterable[str] = (),
) -> LoadComparison:
    """Return load results against a baseline (default the first): a table with its ratios.

    ``tolerance`` is how far a re-run's throughput ratios may drift (``perflab verify``);
    ``unsteady`` names results whose ratios are shown but not recorded, because the lesson
    shows why they change from run to run.
    """
    if not results:
        raise PerflabError("compare_loads() needs at least one load result.")
    listed = list(results)
    marked = frozenset(unsteady)
    comparison = LoadComparison(listed, listed[0], title=title, tolerance=tolerance,
                                unsteady=marked)
    for label in marked:
        comparison.find(label)  # a typo is an error, not a silently checked ratio
    if baseline is not None:
        comparison = LoadComparison(listed, comparison.find(baseline), title=title,
                                    tolerance=tolerance, unsteady=marked)
    return comparison
