"""Draw the lessons' charts: before/after bars, time-versus-size curves, load curves."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from perflab.formatting import format_ratio
from perflab.shell import current_shell

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from perflab.load import LoadResult
    from perflab.measure import Measurement

__all__ = ["bar_chart", "load_chart", "scaling_chart", "show", "waterfall_chart"]

_BASELINE_COLOR = "#9e9e9e"
_COLOR = "#2a7ab0"


def _pyplot() -> Any:
    """Import pyplot, picking the headless Agg backend only when nobody chose one."""
    import matplotlib

    chosen = (
        "MPLBACKEND" in os.environ
        or "matplotlib.pyplot" in sys.modules
        or matplotlib.rcParams._get_backend_or_none() is not None
    )
    if not chosen and not current_shell() is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig: Figure, plt: Any) -> Figure:
    fig.tight_layout()
    # Close at once: pyplot would keep every figure alive for the kernel's lifetime, and the
    # inline backend would draw an open figure a second time. A closed figure still displays.
    plt.close(fig)
    return fig


def show(fig: Figure, *, metadata: dict[str, Any] | None = None) -> None:
    """Display ``fig`` inline when running under IPython; do nothing in scripts and tests.

    ``metadata`` goes into the output beside the picture (a comparison's ratios, say).
    """
    if current_shell() is not None:
        from IPython.display import display

        display(fig, metadata=metadata)


#: Every bar chart has this size, so the lessons' charts line up: two panels, or the time alone.
FIGSIZE = (10.0, 3.4)
TIME_ONLY_FIGSIZE = (7.5, 3.4)


def bar_chart(
    measurements: Sequence[Measurement],
    *,
    title: str | None = None,
    baseline: Measurement | None = None,
) -> Figure:
    """Return side-by-side bars of query count and best time, so both costs show at a glance.

    Time bars (the best round) carry an error bar up to the slowest round and, when
    ``baseline`` is given, a "N times faster" note.
    When no candidate sends a query, the query panel would be all zeros: only time is drawn.
    """
    plt = _pyplot()
    many = len(measurements) > 4
    # Long labels would overlap under neighbouring bars; wrap them onto short lines instead.
    labels = [textwrap.fill(m.label, width=14 if many else 18) for m in measurements]
    colors = [_BASELINE_COLOR if m is baseline else _COLOR for m in measurements]
    counts = [m.query_count for m in measurements]
    if any(counts):
        fig, (ax_queries, ax_time) = plt.subplots(1, 2, figsize=FIGSIZE)
        bars = ax_queries.bar(labels, counts, color=colors)
        ax_queries.bar_label(bars, labels=[str(c) for c in counts], padding=2)
        ax_queries.set_ylabel("queries")
        ax_queries.set_title("Queries per run")
        axes = (ax_queries, ax_time)
    else:
        fig, ax_time = plt.subplots(figsize=TIME_ONLY_FIGSIZE)
        axes = (ax_time,)

    best = [m.best_ms for m in measurements]
    errors = [[0.0 for _ in measurements], [m.max_ms - m.best_ms for m in measurements]]
    bars = ax_time.bar(labels, best, color=colors, yerr=errors, capsize=4)
    ax_time.bar_label(bars, labels=[_time_label(m, baseline) for m in measurements], padding=2,
                      **({"fontsize": 8} if many else {}))
    ax_time.set_ylabel("best ms (whisker: slowest)")
    ax_time.set_title("Time per run" + ("" if any(counts) else " (no queries sent)"))

    for ax in axes:
        # Headroom so the value labels above the tallest bar stay inside the axes.
        ax.set_ylim(0, ax.get_ylim()[1] * 1.25)
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(axis="x", **({"labelrotation": 30, "labelsize": 8} if many else {}))
    if title:
        fig.suptitle(title)
    return _finish(fig, plt)


def _time_label(m: Measurement, baseline: Measurement | None) -> str:
    text = f"{m.best_ms:.3g} ms"
    if baseline is None or m is baseline or m.best_ms <= 0:
        return text
    ratio = baseline.best_ms / m.best_ms
    if ratio >= 1:
        return f"{text}\n{format_ratio(ratio)}\u00d7 faster"
    return f"{text}\n{format_ratio(1 / ratio)}\u00d7 slower"


def _style_curve(ax: Any, xlabel: str) -> None:
    """Give a line chart's axes the lessons' look: a label, a light grid, no top or right box."""
    ax.set_xlabel(xlabel)
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def scaling_chart(
    xs: Sequence[float],
    series: dict[str, list[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logy: bool = False,
) -> Figure:
    """Return one line per series against ``xs``, to show how cost grows with data size."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=TIME_ONLY_FIGSIZE)
    for name, ys in series.items():
        ax.plot(list(xs), ys, marker="o", label=name)
    _style_curve(ax, xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if len(series) > 1:
        ax.legend()
    if title:
        ax.set_title(title)
    return _finish(fig, plt)


def load_chart(
    series: dict[str, Sequence[tuple[float, LoadResult]]],
    *,
    xlabel: str,
    title: str | None = None,
) -> Figure:
    """Return requests per second and p95 latency against ``xlabel`` (workers, users), per series.

    ``series`` maps a name ("sync workers") to (x, result) points. A point whose load generator
    saturated its core is drawn hollow: the server may have had more to give there.
    """
    plt = _pyplot()
    fig, (rps_ax, p95_ax) = plt.subplots(1, 2, figsize=FIGSIZE)
    for name, points in series.items():
        xs = [x for x, _ in points]
        line = rps_ax.plot(xs, [r.rps for _, r in points], marker="o", label=name)[0]
        p95_ax.plot(xs, [r.p95_ms for _, r in points], marker="o", color=line.get_color())
        for x, result in points:
            if result.generator_saturated:
                for ax, y in ((rps_ax, result.rps), (p95_ax, result.p95_ms)):
                    ax.plot([x], [y], marker="o", markersize=11, fillstyle="none",
                            color="#d62728", linestyle="none")
    rps_ax.set_ylabel("requests per second")
    p95_ax.set_ylabel("p95 latency (ms)")
    ticks = sorted({x for points in series.values() for x, _ in points})
    for ax in (rps_ax, p95_ax):
        _style_curve(ax, xlabel)
        ax.set_ylim(bottom=0)
        ax.set_xticks(ticks)  # the measured points (1, 2 and 5 workers), not 1.5 workers
    if len(series) > 1:
        rps_ax.legend()
    if title:
        fig.suptitle(title)
    return _finish(fig, plt)


def waterfall_chart(
    steps: Mapping[str, Sequence[LoadResult]], ceilings: Mapping[str, LoadResult], *, title: str
) -> Figure:
    """Draw load results step by step per scale: rps per server core above, p95 below."""
    plt = _pyplot()
    scales = list(steps)
    labels = [r.label for r in steps[scales[0]]]
    if any([r.label for r in steps[scale]] != labels for scale in scales):
        raise ValueError("Every scale needs the same steps, in the same order.")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10.0, 6.4), sharex=True)
    width = 0.8 / len(scales)
    colors = ["#2a7ab0", "#e08a2c", "#5a9e4b"]
    for i, scale in enumerate(scales):
        xs = [x + (i - (len(scales) - 1) / 2) * width for x in range(len(labels))]
        color = colors[i % len(colors)]
        per_core = [r.rps_per_core or 0.0 for r in steps[scale]]
        top.bar(xs, per_core, width, color=color, label=scale)
        ceiling = ceilings.get(scale)
        if ceiling is not None and ceiling.rps_per_core:
            top.axhline(ceiling.rps_per_core, color=color, linestyle="--", linewidth=1,
                        label=f"{scale}: precomputed bytes")
        bottom.bar(xs, [r.p95_ms for r in steps[scale]], width, color=color, label=scale)
    top.set_ylabel("requests/s per server core (log)")
    top.set_yscale("log")  # each step multiplies the rate: equal gains look equal
    top.set_title(title)
    top.legend(fontsize="small", ncol=2)
    bottom.set_ylabel("p95 latency, ms (log)")
    bottom.set_yscale("log")
    bottom.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    fig = _finish(fig, plt)
    show(fig)
    return fig
