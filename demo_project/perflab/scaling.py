"""The same comparison at two data sizes: where a fix stops paying off as the data grows.

``lab.compare_scales({"label": func, ...}, title=...)`` measures every candidate on a copy of
the lab's database at each scale (``lab.using(scale=...)``), interleaved, and returns a
``ByScale``: one ``Comparison`` per scale, the query counts, a chart of the best time against
the size of the reviews table, and sentences per scale rendered from the measurements.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from perflab.charts import scaling_chart
from perflab.compare import Comparison, Sentence
from perflab.seed import SCALES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ByScale", "scale_title"]


def scale_title(title: str, scale: str) -> str:
    """Return a comparison's title at one scale: "The product list, 20,000 reviews"."""
    return f"{title}, {SCALES[scale].reviews:,} reviews"


class ByScale(Mapping[str, Comparison]):
    """One comparison per scale, in order of size; ``by_scale["default"]`` is a Comparison."""

    def __init__(self, comparisons: Mapping[str, Comparison]) -> None:
        self._comparisons = dict(comparisons)

    def __getitem__(self, scale: str) -> Comparison:
        return self._comparisons[scale]

    def __iter__(self) -> Iterator[str]:
        return iter(self._comparisons)

    def __len__(self) -> int:
        return len(self._comparisons)

    def counts(self) -> dict[str, dict[str, int]]:
        """Return each scale's query count per candidate."""
        return {
            scale: {row.label: row.query_count for row in comparison.rows}
            for scale, comparison in self.items()
        }

    def chart(self, title: str | None = None, *, ylabel: str = "ms, best run") -> Figure:
        """Draw each candidate's best time against the number of reviews (log scale)."""
        comparisons = list(self.values())
        labels = [row.label for row in comparisons[0].rows]
        series = {
            label: [comparison.rows[i].best_ms for comparison in comparisons]
            for i, label in enumerate(labels)
        }
        reviews = [SCALES[scale].reviews for scale in self]
        return scaling_chart(
            reviews, series, xlabel="reviews in the table", ylabel=ylabel, title=title, logy=True
        )

    def sentences(self, *labels: str) -> Sentence:
        """Say each of ``labels`` against the baseline, scale by scale, as Markdown."""
        text = Sentence("", [])
        for scale, comparison in self.items():
            heading = f"**`{scale}`, {SCALES[scale].reviews:,} reviews**  \n"
            text = text + heading + comparison.sentences(*labels) + "  \n"
        return text
