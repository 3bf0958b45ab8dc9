"""Hold what a headless browser measured loading pages: timings, and when each script ran.

``lab.load_pages`` (``perflab.browser``) returns a ``PageLoads``. It shows a table of the
browser's own figures per page, medians with their spread: first contentful paint (when the
visitor first sees something), DOMContentLoaded (the document parsed and its ordered scripts
run) and load (everything the page asked for, async scripts too). ``measurements(metric)``
turns one figure into ``Measurement``s for ``lab.compare``, so ``perflab verify`` sees the
ratios. ``timeline()`` says which scripts were fetched and run before which event: facts that
hold on every run, unlike the timings.
"""

from __future__ import annotations

import statistics
from typing import Any

from perflab.compare import html_table, text_table
from perflab.errors import PerflabError, UnknownChoice
from perflab.formatting import format_bytes, format_ms, plural
from perflab.measure import Measurement

__all__ = ["METRICS", "PageLoads"]

#: The figures read from the browser, and what the table calls them.
METRICS = {"fcp": "first paint", "dcl": "DOMContentLoaded", "load": "load"}


class PageLoads:
    """Hold every navigation's figures, by page label, in the order the pages were given."""

    def __init__(self, result: dict[str, Any], labels: list[str]) -> None:
        self.labels = labels
        self.samples: list[dict[str, Any]] = result["samples"]
        self.browser: str = result["browser"]
        self.peak_memory: int = result["peak_memory"]
        self.title = f"Page loads in headless Chromium {self.browser}, cold cache (ms)"

    def _of(self, label: str) -> list[dict[str, Any]]:
        if label not in self.labels:
            raise UnknownChoice("page", label, tuple(self.labels))
        return [s for s in self.samples if s["variant"] == label]

    def times(self, label: str, metric: str) -> list[float]:
        """Return one figure of every load of a page, in ms since the navigation started."""
        if metric not in METRICS:
            raise UnknownChoice("metric", metric, tuple(METRICS))
        values = [s[metric] for s in self._of(label)]
        if any(v is None for v in values):
            raise PerflabError(f"The browser reported no {METRICS[metric]} for {label!r}.")
        return [float(v) for v in values]

    def median(self, label: str, metric: str) -> float:
        """Return the median of one figure of a page."""
        return statistics.median(self.times(label, metric))

    def measurement(self, label: str, metric: str) -> Measurement:
        """Return one figure of a page as a Measurement (no queries), for ``lab.compare``."""
        times = self.times(label, metric)
        return Measurement(label=label, times_ms=times, repeat=len(times), interleaved=True)

    def measurements(self, metric: str) -> list[Measurement]:
        """Return one figure of every page as Measurements, in the pages' order."""
        return [self.measurement(label, metric) for label in self.labels]

    def all_measurements(self) -> list[Measurement]:
        """Return every figure of every page, labelled "page: figure", for ``lab.record``."""
        return [
            Measurement(label=f"{label}: {name}", times_ms=self.times(label, metric),
                        repeat=len(self._of(label)), interleaved=True)
            for metric, name in METRICS.items() for label in self.labels
        ]

    def after_click_ms(self, label: str) -> list[float]:
        """Return, per load, the ms from the click to the chat widget's script having run."""
        waits = []
        for s in self._of(label):
            click = s.get("click") or {}
            ran = [r["at"] for r in click.get("ran", []) if r["name"] == "chat-widget"]
            if ran:
                waits.append(ran[0] - click["at"])
        return waits

    def rows(self) -> list[tuple[str, ...]]:
        """Return the table's rows as text, the header first: medians and their spread."""
        rows = [("page", *METRICS.values())]
        for label in self.labels:
            cells = []
            for metric in METRICS:
                values = self.times(label, metric)
                cells.append(f"{format_ms(statistics.median(values))} "
                             f"({format_ms(min(values))}-{format_ms(max(values))})")
            rows.append((label, *cells))
        return rows

    def _note(self) -> str:
        loads = plural(len(self._of(self.labels[0])), "load", "loads")
        return (f"median (fastest-slowest) of {loads} each; the browser's processes peaked at "
                f"{format_bytes(self.peak_memory)}")

    def __str__(self) -> str:
        return f"{text_table(self.title, self.rows())}\n{self._note()}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        note = self._note()
        return f"{html_table(self.title, self.rows())}<p>{note[0].upper()}{note[1:]}.</p>"

    def timeline(self) -> str:
        """Return, per page, which scripts were fetched and run before which event.

        These are facts, the same on every run: scripts that run before DOMContentLoaded do so
        in document order (blocking and ``defer``), so that order is shown; async scripts run
        as they arrive, so only which ones ran is shown, by name. A fact that differed between
        the loads of a page is said to vary rather than shown.
        """
        lines = []
        for label in self.labels:
            facts = [_facts(s) for s in self._of(label)]
            lines.append(label)
            for key, _ in facts[0]:
                seen = {dict(f)[key] for f in facts}
                lines.append(f"  {key}: {seen.pop() if len(seen) == 1 else 'varies'}")
        return "\n".join(lines)


def _names(items: list[dict[str, Any]], ordered: bool) -> str:
    names = [i["name"] for i in items]
    if not names:
        return "nothing"
    return " then ".join(names) if ordered else ", ".join(sorted(names))


def _facts(s: dict[str, Any]) -> list[tuple[str, str]]:
    """Return one load's facts, as (what, which scripts) pairs in a fixed order."""
    # The scripts in the order they ran, and how many had run when each event fired.
    ran, dcl, load = s["ran"], s["ran_before_dcl"], s["ran_before_load"]
    facts = [
        ("fetched before DOMContentLoaded", _names([r for r in s["requested"]
                                                   if r["start"] < s["dcl"]], False)),
        ("ran before DOMContentLoaded", _names(ran[:dcl], True)),
        ("ran after it, before load", _names(ran[dcl:load], False)),
    ]
    click = s.get("click")
    if click is not None:
        before = [r for r in s["requested"] if r["start"] < click["at"]]
        facts += [
            ("fetched before the click", _names(before, False)),
            ("fetched after the click", _names(click["requested"], False)),
            ("chat widget shown after the click", "yes" if click["widget_shown"] else "no"),
        ]
    return facts
