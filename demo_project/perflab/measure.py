"""Measure what a piece of Django code costs: the queries it sends and the time it takes.

Modelled on django-debug-toolbar's SQL panel (count, similar and duplicate groups, elided select
lists, EXPLAIN per vendor) and django-perf-rec (small, typed, keyword-only). Counts are facts a
notebook can check; timings are medians of repeated rounds, reported with their min-max range.

The timing method is timeit's and pyperf's: the garbage collector is off inside timed rounds,
a fast call is looped until a round lasts long enough for the clock, the queries are captured
in a run of their own (capturing costs time), and ``compare(..., interleave=True)`` times
independent candidates again, round by round, so a machine that speeds up or slows down
meanwhile shifts them all alike. Every comparison records its ratios in its output's
metadata, for ``perflab verify``.
"""

from __future__ import annotations

import gc as gc_module
import html
import math
import os
import statistics
import tracemalloc
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from time import perf_counter, process_time
from types import TracebackType
from typing import Any

from perflab.capture import CapturedQuery, QueryGroup, Recording, capture, groups
from perflab.errors import PerflabError, UnknownChoice
from perflab.formatting import format_ms, plural
from perflab.schema import Schema
from perflab.schema import current as current_schema
from perflab.sql import params_key

__all__ = [
    "DEFAULT_REPEAT",
    "DEFAULT_WARMUP",
    "MIN_ROUND_MS",
    "TIMERS",
    "Measurement",
    "clock",
    "measure",
    "peak_memory",
    "results",
    "timed_rounds",
]

DEFAULT_REPEAT = 9
DEFAULT_WARMUP = 1
#: Set to 1 by nbval (notebooks/conftest.py), whose runs read no timing: a measurement times
#: two rounds (so it can still be interleaved), never more; ``perflab notebooks``/``verify`` don't.
QUICK_ENV, QUICK_REPEAT = "PERFLAB_QUICK", 2
#: A timed round lasts at least this long: a faster call is looped within the round (timeit's
#: autorange), so the clock's resolution and one-off hiccups stop mattering.
MIN_ROUND_MS = 25.0
_MAX_LOOPS = 100_000
#: "wall": time.perf_counter, what a user waits. "cpu": time.process_time, this process's CPU
#: only, steadier when the work is pure Python and the machine is shared.
TIMERS = ("wall", "cpu")

#: Measurements made by the ``%%measure`` cell magic, by label, so ``compare("a", "b")`` works.
results: dict[str, Measurement] = {}


@dataclass(eq=False)
class Measurement:
    """Hold the queries and timings of one piece of code; also a ``with`` block that fills it.

    ``queries`` come from one run; ``times_ms`` has one entry per timed round: the time of one
    call, averaged over the ``loops`` calls of that round. The headline is the fastest round
    (``best_ms``), as ``timeit`` reports it: a round only gets slower when something outside the
    code disturbs it (another process, the machine's other tenants), so the best round is the
    figure that repeats from one run of the lesson to the next. The spread is shown beside it:
    the median and the slowest round.
    """

    label: str
    queries: list[CapturedQuery] = field(default_factory=list)
    times_ms: list[float] = field(default_factory=list)
    repeat: int = 1
    warmup: int = 0
    using: str = "default"
    result: Any = None
    peak_bytes: int | None = None
    loops: int = 1
    timer: str = "wall"
    gc_enabled: bool = False
    interleaved: bool = False
    func: Callable[[], Any] | None = field(default=None, repr=False)
    #: The database it ran on and the lab-added indexes it had, to time it again the same way.
    schema: Schema | None = field(default=None, repr=False)
    _stack: ExitStack | None = field(default=None, init=False, repr=False)
    _recording: Recording | None = field(default=None, init=False, repr=False)
    _start: float = field(default=0.0, init=False, repr=False)

    # -- numbers --

    @property
    def query_count(self) -> int:
        """Return how many queries one run sent. Timings vary; counts don't."""
        return len(self.queries)

    @property
    def median_ms(self) -> float:
        """Return the median run time: one slow run (GC, a busy laptop) does not move it."""
        return statistics.median(self.times_ms) if self.times_ms else math.nan

    @property
    def best_ms(self) -> float:
        """Return the fastest round: the least disturbed, so the one that reproduces."""
        return self.min_ms

    @property
    def min_ms(self) -> float:
        """Return the fastest run, the lower end of the spread."""
        return min(self.times_ms) if self.times_ms else math.nan

    @property
    def max_ms(self) -> float:
        """Return the slowest run, the upper end of the spread."""
        return max(self.times_ms) if self.times_ms else math.nan

    @property
    def spread_ms(self) -> tuple[float, float]:
        """Return (min, max) run time: the range the rounds spread over."""
        return (self.min_ms, self.max_ms)

    @property
    def peak_mib(self) -> float:
        """Return the peak Python memory of one run in MiB (measure(..., memory=True))."""
        return math.nan if self.peak_bytes is None else self.peak_bytes / 2**20

    @property
    def total_query_ms(self) -> float:
        """Return the time spent inside the database driver, to set against the run time."""
        return sum(q.duration_ms for q in self.queries)

    @property
    def similar_groups(self) -> list[QueryGroup]:
        """Return queries that ran 2+ times with the same SQL, params ignored: the N+1 signature."""
        return groups(self.queries, lambda q: q.sql)

    @property
    def duplicate_groups(self) -> list[QueryGroup]:
        """Return queries that ran 2+ times with the same SQL and params: pure waste."""
        return groups(self.queries, lambda q: (q.sql, params_key(q.params)))

    # -- the with-block form --

    def __enter__(self) -> Measurement:
        if self._stack is not None:
            raise PerflabError(f"Measurement {self.label!r} is already running.")
        self._stack = ExitStack()
        self._recording = self._stack.enter_context(capture(self.using))
        # Start the clock last, so opening the connection is not charged to the block.
        self._start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed_ms = (perf_counter() - self._start) * 1000
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()
        self.times_ms = [elapsed_ms]
        if self._recording is not None:
            self.queries = self._recording.queries()
        # Returning None lets an exception from the block propagate after we recorded it.

    # -- display --

    def _summary(self) -> str:
        if not self.times_ms:
            return f"{self.label}: not run yet"
        runs = "1 run" if len(self.times_ms) == 1 else f"{len(self.times_ms)} runs"
        return (
            f"{self.label}: {plural(self.query_count, 'query', 'queries')}, "
            f"best {format_ms(self.best_ms)} ms "
            f"(median {format_ms(self.median_ms)}, slowest {format_ms(self.max_ms)} ms, {runs})"
        )

    def __str__(self) -> str:
        return self._summary()

    def __repr__(self) -> str:
        return f"<Measurement {self._summary()}>"

    def show_sql(self, limit: int = 10) -> None:
        """Print the first ``limit`` queries, elided, so a learner sees what Django sent."""
        print(self._summary())
        for number, query in enumerate(self.queries[:limit], start=1):
            many = " (executemany)" if query.many else ""
            print(f"{number:>3}. {query.elided}{many}")
        hidden = self.query_count - limit
        if hidden > 0:
            print(f"     ... and {plural(hidden, 'more query', 'more queries')}")

    def _repr_html_(self) -> str:
        e = html.escape
        rows = (
            f"<tr><td>{e(self.label)}</td><td>{self.query_count}</td>"
            f"<td>{format_ms(self.best_ms)} ms</td>"
            f"<td>{format_ms(self.median_ms)} ms</td>"
            f"<td>{format_ms(self.max_ms)} ms</td>"
            f"<td>{len(self.times_ms)}</td></tr>"
        )
        parts = [
            "<div class='perflab-measurement'><table>",
            "<thead><tr><th>label</th><th>queries</th><th>best</th>"
            "<th>median</th><th>slowest</th><th>runs</th></tr></thead>",
            f"<tbody>{rows}</tbody></table>",
        ]
        for title, found in (
            ("Similar queries (same SQL, different params)", self.similar_groups),
            ("Duplicate queries (same SQL and params)", self.duplicate_groups),
        ):
            if found:
                items = "".join(
                    f"<li><b>{g.count}&times;</b> <code>{e(g.sql)}</code>"
                    + (f"<br>sent by {_source_html(g.source)}" if g.source else "")
                    + "</li>"
                    for g in found[:5]
                )
                parts.append(f"<p>{title}:</p><ul>{items}</ul>")
        if self.queries:
            shown = self.queries[:5]
            items = "".join(f"<li><code>{e(q.elided)}</code></li>" for q in shown)
            parts.append(
                f"<details><summary>First {len(shown)} of "
                f"{plural(self.query_count, 'query', 'queries')}</summary><ol>{items}</ol>"
                "</details>"
            )
        parts.append("</div>")
        return "".join(parts)



def _source_html(source: str) -> str:
    """Render a query's source (code in backticks, then where) as HTML."""
    parts = source.split("`")
    return "".join(
        f"<code>{html.escape(part)}</code>" if i % 2 else html.escape(part)
        for i, part in enumerate(parts)
    )


def measure(
    label: str,
    func: Callable[[], Any] | None = None,
    *,
    repeat: int | None = None,
    warmup: int | None = None,
    using: str = "default",
    memory: bool = False,
    timer: str = "wall",
    gc: bool = False,
) -> Measurement:
    """Run ``func`` repeatedly and return its queries and timings, so claims rest on numbers.

    With ``func``: ``warmup`` untimed runs (default 1: connection, caches and imports warm up),
    one run with the queries captured, then ``repeat`` timed rounds (default 9), each looping
    the call until it lasts ``MIN_ROUND_MS``, with the garbage collector off (``gc=True`` keeps
    it on, where allocation is the lesson). ``timer="cpu"`` counts this process's CPU time.
    With ``warmup=0`` the function may change state (an insert, a cache miss): then the first
    timed run is the captured one and nothing is looped.

    Without ``func``, return a Measurement to use as ``with measure("naive") as m:``; the block
    runs once, captured and timed.

    With ``memory=True`` one more, untimed run is traced by tracemalloc and its peak kept in
    ``peak_bytes``: tracing slows Python down, so it never shares a run with the clock.
    """
    if func is None:
        if (repeat or 1) != 1 or warmup or memory:
            raise PerflabError(
                "A `with measure(...)` block runs once, so it takes no repeat, warmup or memory. "
                "Pass a function instead: measure(label, func, repeat=5, memory=True)."
            )
        return Measurement(label=label, using=using)
    repeat = DEFAULT_REPEAT if repeat is None else repeat
    warmup = DEFAULT_WARMUP if warmup is None else warmup
    if repeat < 1 or warmup < 0:
        raise PerflabError(f"repeat must be >= 1 and warmup >= 0 (got {repeat}, {warmup}).")
    if quick():
        repeat = min(repeat, QUICK_REPEAT)
    tick = clock(timer)

    result: Any = None
    for _ in range(warmup):
        result = func()
    if warmup:
        # Capturing costs time per query: the captured run is kept away from the clock.
        with capture(using) as recording:
            start = perf_counter()
            result = func()
            captured_ms = (perf_counter() - start) * 1000
        loops = loops_for(func, captured_ms)
        times_ms, result = timed_rounds([(func, loops)], repeat, tick, gc_on=gc)
        times = times_ms[0]
    else:
        loops = 1
        with capture(using) as recording:
            start = tick()
            result = func()
            first_ms = (tick() - start) * 1000
        rest, last = timed_rounds([(func, 1)], repeat - 1, tick, gc_on=gc)
        times = [first_ms, *rest[0]]
        result = last if repeat > 1 else result
    return Measurement(
        label=label,
        queries=recording.queries(),
        times_ms=times,
        repeat=repeat,
        warmup=warmup,
        using=using,
        result=result,
        peak_bytes=peak_memory(func) if memory else None,
        loops=loops,
        timer=timer,
        gc_enabled=gc,
        func=func,
        schema=current_schema(using),
    )


def quick() -> bool:
    """Return True in a test run whose timings nobody reads (``PERFLAB_QUICK=1``)."""
    return os.environ.get(QUICK_ENV) == "1"


def clock(timer: str) -> Callable[[], float]:
    if timer not in TIMERS:
        raise UnknownChoice("timer", timer, TIMERS)
    return perf_counter if timer == "wall" else process_time


def loops_for(func: Callable[[], Any], first_ms: float) -> int:
    """Return how many calls make a round last MIN_ROUND_MS (timeit's autorange, in short).

    Counted on the wall clock whatever the timer: a call that mostly waits uses little CPU,
    and looping it until its CPU time adds up would take forever.
    """
    if first_ms >= MIN_ROUND_MS:
        return 1
    # The captured run paid for the capture: time one clean call before deciding.
    start = perf_counter()
    func()
    one_ms = (perf_counter() - start) * 1000
    if one_ms >= MIN_ROUND_MS:
        return 1
    return min(_MAX_LOOPS, math.ceil(MIN_ROUND_MS / max(one_ms, 1e-4)))


def timed_rounds(
    candidates: Sequence[tuple[Callable[[], Any], int]],
    rounds: int,
    clock: Callable[[], float],
    *,
    gc_on: bool,
    prepare: Sequence[Callable[[], None] | None] | None = None,
) -> tuple[list[list[float]], Any]:
    """Time each (func, loops) ``rounds`` times, interleaved; return ms per call, and a result.

    Each round runs every candidate once, a different one first each time, so a machine that
    warms up or gets busy during the measurement shifts all candidates alike. ``prepare``, one
    per candidate, runs untimed just before that candidate's turn (recreate its indexes).
    """
    times: list[list[float]] = [[] for _ in candidates]
    result: Any = None
    was_enabled = gc_module.isenabled()
    if not gc_on:
        gc_module.collect()  # garbage from earlier cells must not be collected on our clock
        gc_module.disable()
    try:
        for number in range(rounds):
            for offset in range(len(candidates)):
                index = (number + offset) % len(candidates)
                func, loops = candidates[index]
                if prepare is not None and prepare[index] is not None:
                    prepare[index]()  # type: ignore[misc]
                if not gc_on:
                    # Untimed, as timeit's repeats are: the last round's garbage goes now, so no
                    # round starts on a heap swollen by the ones before it.
                    gc_module.collect(0)
                result = None  # a big result (a whole table) is not held while the next is made
                start = clock()
                for _ in range(loops):
                    result = func()
                times[index].append((clock() - start) * 1000 / loops)
    finally:
        if was_enabled:
            gc_module.enable()
    return times, result


def peak_memory(func: Callable[[], Any]) -> int:
    """Return the most memory Python held at once while ``func`` ran, above where it started.

    The result is dropped inside the trace, so a function that returns a big list is charged
    for it; one that streams rows is charged only for what it held at a time.
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        gc_module.collect()
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        func()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(peak - before, 0)
