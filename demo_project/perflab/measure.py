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

import ast
import gc as gc_module
import html
import math
import re
import statistics
import tracemalloc
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from time import perf_counter, process_time
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlparse import lexer
from sqlparse import tokens as T

from perflab.errors import PerflabError, UnknownChoice

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from IPython.core.interactiveshell import InteractiveShell
    from matplotlib.figure import Figure

__all__ = [
    "TIMERS",
    "TOLERANCE",
    "CapturedQuery",
    "Comparison",
    "ComparisonRow",
    "Explain",
    "Measurement",
    "QueryGroup",
    "Sentence",
    "compare",
    "describe_ratio",
    "elide",
    "explain",
    "format_bytes",
    "format_ratio",
    "load_ipython_extension",
    "measure",
    "peak_memory",
    "print_sql",
    "register_magics",
    "results",
]

DEFAULT_REPEAT = 5
DEFAULT_WARMUP = 1
#: A timed round lasts at least this long: a faster call is looped within the round (timeit's
#: autorange), so the clock's resolution and one-off hiccups stop mattering.
MIN_ROUND_MS = 25.0
_MAX_LOOPS = 100_000
#: "wall": time.perf_counter, what a user waits. "cpu": time.process_time, this process's CPU
#: only, steadier when the work is pure Python and the machine is shared.
TIMERS = ("wall", "cpu")
#: How far a ratio may drift between two runs of a lesson before `perflab verify` calls it out.
TOLERANCE = 0.30

#: Measurements made by the ``%%measure`` cell magic, by label, so ``compare("a", "b")`` works.
results: dict[str, Measurement] = {}


# --- SQL text -----------------------------------------------------------------------------------


def elide(sql: str) -> str:
    """Return ``sql`` with top-level select lists shortened to ``SELECT ... FROM``.

    The column list is the noise in an ORM query; the FROM/JOIN/WHERE/ORDER part says what it
    does. Like debug toolbar, a select list without a dot (``COUNT(*)``, ``(1) AS "a"``) is kept,
    because there it *is* the point of the query.
    """
    tokens = lexer.tokenize(sql)
    out: list[str] = []
    elision_allowed = True
    for ttype, value in tokens:
        out.append(value)
        if ttype in T.Keyword:
            keyword = value.upper()
            if elision_allowed and keyword == "SELECT":
                out.extend(_elide_select_list(tokens))
            # Only a SELECT that starts the statement or follows a set operator is top level;
            # one after WHERE ... IN ( is a subquery whose columns matter.
            elision_allowed = keyword.split()[0] in {"UNION", "INTERSECT", "EXCEPT", "ALL"}
    return _shorten_value_lists("".join(out))


# Items may be wrapped in their own parentheses: Django 6.1 writes IN ((9), (13), ...).
_LONG_IN_LIST = re.compile(r"\bIN \(((?:\(?[^(),]+\)?, ){5,}\(?[^(),]+\)?)\)")
# Django 5.2 writes some prefetches as ("t"."id" = 1 OR "t"."id" = 2 OR ...) instead of IN.
_LONG_OR_CHAIN = re.compile(r'\((("[^"]+"\."[^"]+") = [^()\s]+)((?: OR \2 = [^()\s]+){5,})\)')


def _shorten_value_lists(sql: str) -> str:
    """Shorten long ``IN (...)`` lists and ``OR`` chains to their first items and a count."""

    def in_list(match: re.Match[str]) -> str:
        items = match.group(1).split(", ")
        return f"IN ({', '.join(items[:3])}, ... {len(items)} values)"

    def or_chain(match: re.Match[str]) -> str:
        count = 1 + match.group(3).count(" OR ")
        return f"({match.group(1)} OR ... {count} alternatives)"

    return _LONG_OR_CHAIN.sub(or_chain, _LONG_IN_LIST.sub(in_list, sql))


def _elide_select_list(tokens: Iterator[tuple[Any, str]]) -> list[str]:
    """Consume tokens up to the top-level FROM; return what should replace them."""
    saved: list[str] = []
    prefix = " "
    has_dot = False
    depth = 0
    seen_code = False
    for ttype, value in tokens:
        if ttype in T.Punctuation:
            # A subquery in the select list has its own FROM; only depth 0 ends the list.
            depth += {"(": 1, ")": -1}.get(value, 0)
            has_dot = has_dot or value == "."
        if depth == 0 and ttype in T.Keyword and value.upper() == "FROM":
            return [*(saved if not has_dot else [prefix, "...", " "]), value]
        if not seen_code and ttype in T.Keyword and value.upper() == "DISTINCT":
            # DISTINCT changes the result, so it survives the elision.
            prefix = " DISTINCT "
        seen_code = seen_code or ttype not in T.Whitespace
        saved.append(value)
    return saved


def _params_key(params: Any) -> str:
    # repr() because params may hold unhashable lists (as debug toolbar found out, issue 1091).
    if isinstance(params, list | tuple):
        return repr(tuple(params))
    return repr(params)


# --- Measurement --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CapturedQuery:
    """Hold one query as sent: raw SQL and params for grouping, and how Django logged it."""

    sql: str
    params: Any
    many: bool
    duration_ms: float
    rendered: str

    @property
    def elided(self) -> str:
        """Return the rendered SQL with the select list elided, for reading."""
        return elide(self.rendered)


class QueryGroup(NamedTuple):
    """Pair a repeated query (elided SQL) with how many times it ran."""

    sql: str
    count: int


_TRANSACTION_STATEMENTS = ("BEGIN", "COMMIT", "ROLLBACK")


class _Recording:
    """Record every statement a connection sends inside a block, rendered as Django logs it.

    What counts is what Django's ``assertNumQueries`` counts: every statement sent through a
    cursor (savepoints, and ``BEGIN`` on SQLite), plus the ``BEGIN``, ``COMMIT`` and
    ``ROLLBACK`` Django logs for a transaction it opens or ends through the driver. The SQL is
    rendered with the backend's own ``last_executed_query``, as django-debug-toolbar does, never
    read back from ``connection.queries``, whose log keeps only the last 9,000.
    """

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.captured: list[CapturedQuery] = []
        self._unclaimed: CapturedQuery | None = None

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        """Run one statement (an execute_wrapper) and record it, rendered."""
        if many and params is not None and not isinstance(params, list | tuple):
            # An iterator would be used up by the time we look at it; keep a copy we can read.
            params = list(params)
        start = perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            duration_ms = (perf_counter() - start) * 1000
            query = CapturedQuery(sql, params, many, duration_ms,
                                  self._render(context, sql, params, many))
            self.captured.append(query)
            self._unclaimed = query

    def log(self, entry: dict[str, Any]) -> None:
        """Take one entry Django appends to its query log: a transaction statement, or not."""
        call, self._unclaimed = self._unclaimed, None
        text = str(entry.get("sql", ""))
        if call is not None and not (
            text in _TRANSACTION_STATEMENTS and call.sql.strip().upper() != text
        ):
            return  # the debug cursor's line for the statement just recorded
        if text in _TRANSACTION_STATEMENTS:
            duration_ms = float(entry.get("time") or 0) * 1000
            self.captured.append(CapturedQuery(text, None, False, duration_ms, text))

    def queries(self) -> list[CapturedQuery]:
        return list(self.captured)

    def _render(self, context: Any, sql: str, params: Any, many: bool) -> str:
        if many:
            count = len(params) if params is not None else "?"
            return f"{count} times: {sql}"
        try:
            cursor = getattr(context.get("cursor"), "cursor", None)
            rendered = self.connection.ops.last_executed_query(cursor, sql, params)
        except Exception:  # a backend that can't render these params: show them beside the SQL
            rendered = None
        return rendered if rendered else f"{sql} -- params: {params!r}"


class _LogTap(deque[dict[str, Any]]):
    """Stand in for ``connection.queries_log``: hand each entry to a recording, keep it too."""

    def __init__(self, previous: deque[dict[str, Any]], recording: _Recording) -> None:
        super().__init__(previous, maxlen=previous.maxlen)
        self.previous = previous
        self._recording = recording

    def append(self, entry: dict[str, Any]) -> None:
        self._recording.log(entry)
        self.previous.append(entry)
        super().append(entry)


@dataclass(eq=False)
class Measurement:
    """Hold the queries and timings of one piece of code; also a ``with`` block that fills it.

    ``queries`` come from one run; ``times_ms`` has one entry per timed round: the time of one
    call, averaged over the ``loops`` calls of that round. The spread is the min-max range
    (``min_ms``, ``max_ms``): with five rounds it is more honest than a standard deviation, and
    it is what the chart's error bars show.
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
    _stack: ExitStack | None = field(default=None, init=False, repr=False)
    _recording: _Recording | None = field(default=None, init=False, repr=False)
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
    def min_ms(self) -> float:
        """Return the fastest run, the lower end of the spread."""
        return min(self.times_ms) if self.times_ms else math.nan

    @property
    def max_ms(self) -> float:
        """Return the slowest run, the upper end of the spread."""
        return max(self.times_ms) if self.times_ms else math.nan

    @property
    def spread_ms(self) -> tuple[float, float]:
        """Return (min, max) run time: the range the median sits in."""
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
        return _groups(self.queries, lambda q: q.sql)

    @property
    def duplicate_groups(self) -> list[QueryGroup]:
        """Return queries that ran 2+ times with the same SQL and params: pure waste."""
        return _groups(self.queries, lambda q: (q.sql, _params_key(q.params)))

    # -- the with-block form --

    def __enter__(self) -> Measurement:
        if self._stack is not None:
            raise PerflabError(f"Measurement {self.label!r} is already running.")
        self._stack = ExitStack()
        self._recording = self._stack.enter_context(_capture(self.using))
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
            f"{self.label}: {_plural(self.query_count, 'query', 'queries')}, "
            f"median {_ms(self.median_ms)} ms (range {_ms(self.min_ms)}-{_ms(self.max_ms)} ms, "
            f"{runs})"
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
            print(f"     ... and {_plural(hidden, 'more query', 'more queries')}")

    def _repr_html_(self) -> str:
        e = html.escape
        rows = (
            f"<tr><td>{e(self.label)}</td><td>{self.query_count}</td>"
            f"<td>{_ms(self.median_ms)} ms</td>"
            f"<td>{_ms(self.min_ms)}&ndash;{_ms(self.max_ms)} ms</td>"
            f"<td>{len(self.times_ms)}</td></tr>"
        )
        parts = [
            "<div class='perflab-measurement'><table>",
            "<thead><tr><th>label</th><th>queries</th><th>median</th>"
            "<th>range (min&ndash;max)</th><th>runs</th></tr></thead>",
            f"<tbody>{rows}</tbody></table>",
        ]
        for title, groups in (
            ("Similar queries (same SQL, different params)", self.similar_groups),
            ("Duplicate queries (same SQL and params)", self.duplicate_groups),
        ):
            if groups:
                items = "".join(
                    f"<li><b>{g.count}&times;</b> <code>{e(g.sql)}</code></li>" for g in groups[:5]
                )
                parts.append(f"<p>{title}:</p><ul>{items}</ul>")
        if self.queries:
            shown = self.queries[:5]
            items = "".join(f"<li><code>{e(q.elided)}</code></li>" for q in shown)
            parts.append(
                f"<details><summary>First {len(shown)} of "
                f"{_plural(self.query_count, 'query', 'queries')}</summary><ol>{items}</ol>"
                "</details>"
            )
        parts.append("</div>")
        return "".join(parts)


def _groups(queries: list[CapturedQuery], key: Callable[[CapturedQuery], Any]) -> list[QueryGroup]:
    counts = Counter(key(q) for q in queries)
    first_sql: dict[Any, str] = {}
    for q in queries:
        first_sql.setdefault(key(q), q.sql)
    # Counter.most_common keeps first-seen order among equal counts, so output is stable.
    return [QueryGroup(elide(first_sql[k]), n) for k, n in counts.most_common() if n >= 2]


@contextmanager
def _capture(using: str) -> Iterator[_Recording]:
    """Capture every statement on connection ``using`` inside the block."""
    from django.db import connections

    connection = connections[using]
    recording = _Recording(connection)
    # Django logs COMMIT and ROLLBACK only while queries are logged (as CaptureQueriesContext
    # arranges); the tap reads them as they come, so the log's size limit never matters.
    forced, connection.force_debug_cursor = connection.force_debug_cursor, True
    previous = connection.queries_log
    connection.queries_log = _LogTap(previous, recording)
    try:
        with connection.execute_wrapper(recording):
            yield recording
    finally:
        connection.queries_log = previous
        connection.force_debug_cursor = forced


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
    one run with the queries captured, then ``repeat`` timed rounds (default 5), each looping
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
    clock = _clock(timer)

    result: Any = None
    for _ in range(warmup):
        result = func()
    if warmup:
        # Capturing costs time per query: the captured run is kept away from the clock.
        with _capture(using) as recording:
            start = perf_counter()
            result = func()
            captured_ms = (perf_counter() - start) * 1000
        loops = _loops_for(func, captured_ms)
        times_ms, result = _timed_rounds([(func, loops)], repeat, clock, gc_on=gc)
        times = times_ms[0]
    else:
        loops = 1
        with _capture(using) as recording:
            start = clock()
            result = func()
            first_ms = (clock() - start) * 1000
        rest, last = _timed_rounds([(func, 1)], repeat - 1, clock, gc_on=gc)
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
    )


def _clock(timer: str) -> Callable[[], float]:
    if timer not in TIMERS:
        raise UnknownChoice("timer", timer, TIMERS)
    return perf_counter if timer == "wall" else process_time


def _loops_for(func: Callable[[], Any], first_ms: float) -> int:
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


def _timed_rounds(
    candidates: Sequence[tuple[Callable[[], Any], int]],
    rounds: int,
    clock: Callable[[], float],
    *,
    gc_on: bool,
) -> tuple[list[list[float]], Any]:
    """Time each (func, loops) ``rounds`` times, interleaved; return ms per call, and a result.

    Each round runs every candidate once, a different one first each time, so a machine that
    warms up or gets busy during the measurement shifts all candidates alike.
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


# --- printing queries as they run ---------------------------------------------------------------


@contextmanager
def print_sql(*, using: str = "default") -> Iterator[None]:
    """Print each query as it runs, elided and with its params, to see *when* Django queries.

    django-extensions' ``monkey_patch_cursordebugwrapper`` prints full, reindented, colourised
    SQL plus a wall-clock line and skips executemany; an execute_wrapper gives short,
    deterministic lines a notebook can check, without patching Django's cursor classes.
    """
    from django.db import connections

    counter = 0

    def wrapper(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        nonlocal counter
        counter += 1
        suffix = " (executemany)" if many else ""
        print(f"[{counter}] {elide(sql)}{suffix}  -- params: {params!r}")
        return execute(sql, params, many, context)

    with connections[using].execute_wrapper(wrapper):
        yield


# --- compare ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComparisonRow:
    """Hold one line of a comparison table, for code that wants numbers rather than HTML."""

    label: str
    query_count: int
    median_ms: float
    min_ms: float
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
                median_ms=m.median_ms,
                min_ms=m.min_ms,
                max_ms=m.max_ms,
                speedup=self.speedup(m),
                is_baseline=m is self.baseline,
                peak_bytes=m.peak_bytes,
            )
            for m in self.measurements
        ]

    def _find(self, which: str | Measurement) -> Measurement:
        if isinstance(which, Measurement):
            return which
        for m in self.measurements:
            if m.label == which:
                return m
        raise UnknownChoice("measurement", which, [m.label for m in self.measurements])

    def speedup(self, which: str | Measurement) -> float:
        """Return baseline median / this median: above 1 is faster, below 1 is slower."""
        return _ratio(self.baseline.median_ms, self._find(which).median_ms)

    def record(self, *which: str | Measurement) -> dict[str, Any]:
        """Return the ratios as data (all, or those of ``which``), for ``perflab verify``."""
        chosen = [self._find(w) for w in which] or [
            m for m in self.measurements if m is not self.baseline
        ]
        return {
            "comparison": self.title or " vs ".join(m.label for m in self.measurements),
            "baseline": self.baseline.label,
            "ratios": {m.label: round(self.speedup(m), 4) for m in chosen},
            "tolerance": self.tolerance,
        }

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
            counts = f"{_plural(m.query_count, 'query', 'queries')} each"
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

    def __str__(self) -> str:
        header: tuple[str, ...] = ("label", "queries", "median ms", "range ms", "vs baseline")
        if self._has_memory:
            header += ("peak memory",)
        table = [header] + [
            (
                r.label,
                str(r.query_count),
                _ms(r.median_ms),
                f"{_ms(r.min_ms)}-{_ms(r.max_ms)}",
                _speedup_cell(r),
            )
            + ((format_bytes(r.peak_bytes),) if self._has_memory else ())
            for r in self.rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]
        lines = [self.title] if self.title else []
        for line in table:
            cells = [
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(line, widths, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)

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
        e = html.escape
        caption = f"<caption>{e(self.title)}</caption>" if self.title else ""
        memory = self._has_memory
        body = "".join(
            f"<tr><td>{e(r.label)}</td><td>{r.query_count}</td><td>{_ms(r.median_ms)}</td>"
            f"<td>{_ms(r.min_ms)}&ndash;{_ms(r.max_ms)}</td><td>{e(_speedup_cell(r))}</td>"
            + (f"<td>{format_bytes(r.peak_bytes)}</td>" if memory else "")
            + "</tr>"
            for r in self.rows
        )
        return (
            f"<table class='perflab-comparison'>{caption}<thead><tr><th>label</th>"
            "<th>queries</th><th>median ms</th><th>range ms</th><th>vs baseline</th>"
            + ("<th>peak memory</th>" if memory else "")
            + f"</tr></thead><tbody>{body}</tbody></table>"
        )


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


def describe_ratio(speedup: float, *, times: str = "\u00d7") -> str:
    """Return a speedup as a table says it: 3.2 times faster or 1.4 times slower, shortened."""
    if speedup >= 1:
        return f"{format_ratio(speedup)}{times} faster"
    return f"{format_ratio(1 / speedup)}{times} slower" if speedup > 0 else "-"


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
    the measurements that can be run again (a function, warmed up, several rounds) are timed
    again together, round by round, and those times replace their own. Ask for it only when
    each candidate runs the same in the state the others leave: not across an index added
    between two measurements, a setting changed, or a cache warmed. With ``chart=True`` the
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
        from perflab import charts

        comparison.figure = charts.bar_chart(resolved, title=title, baseline=base)
        charts.show(comparison.figure, metadata={"perflab": [comparison.record()]})
    return comparison


def _interleave(measurements: Sequence[Measurement]) -> None:
    """Time again, round by round, the measurements whose function can simply be run again."""
    again = [
        m for m in dict.fromkeys(measurements)  # a measurement listed twice is timed once
        if m.func is not None and m.warmup >= 1 and m.repeat >= 2
    ]
    if len(again) < 2 or len({m.timer for m in again}) > 1:
        return
    times, _ = _timed_rounds(
        [(m.func, m.loops) for m in again if m.func is not None],
        max(m.repeat for m in again),
        _clock(again[0].timer),
        gc_on=any(m.gc_enabled for m in again),
    )
    for m, measured in zip(again, times, strict=True):
        m.times_ms = measured
        m.interleaved = True


# --- EXPLAIN ------------------------------------------------------------------------------------

_SQLITE_ROW = re.compile(r"^(\d+) (\d+) (\d+) (.*)$")
_PG_NODE = re.compile(
    r"^(\s*->\s+)?(.*?)\s*(\(cost=[^)]*\))?\s*(\(actual[^)]*\)|\(never executed\))?$"
)
# Plan detail lines that are about the query, not about this run's data volume or timing.
_PG_KEPT_DETAILS = (
    "Index Cond:",
    "Filter:",
    "Hash Cond:",
    "Join Filter:",
    "Merge Cond:",
    "Recheck Cond:",
    "Sort Key:",
    "Presorted Key:",
    "Group Key:",
    "One-Time Filter:",
    "Order By:",
    "Cache Key:",
)


@dataclass(frozen=True)
class Explain:
    """Hold a query plan and answer the questions a lesson asks of it, across vendors."""

    text: str
    vendor: str
    analyze: bool = False

    def __str__(self) -> str:
        if self.vendor == "sqlite":
            nodes = _sqlite_nodes(self.text)
            if nodes is not None:
                return _sqlite_tree(nodes)
        return self.text

    def _repr_html_(self) -> str:
        return f"<pre class='perflab-explain'>{html.escape(str(self))}</pre>"

    @property
    def full_scans(self) -> list[str]:
        """Return the tables read row by row without an index: the usual slow part of a plan."""
        if self.vendor == "sqlite":
            scans = []
            for line in self.shape().splitlines():
                match = re.match(r"^\s*SCAN (\S+)(.*)$", line)
                if match and "USING" not in match.group(2) and _is_sqlite_table(match.group(1)):
                    scans.append(match.group(1))
            return scans
        if self.vendor == "postgresql":
            return re.findall(r"Seq Scan on (\S+)", self.text)
        raise self._unsupported("full_scans")

    def uses_index(self, name: str | None = None) -> bool:
        """Return whether the plan reads through an index (``name``, or any index at all)."""
        if self.vendor == "sqlite":
            indexes = re.findall(r"USING (?:COVERING )?INDEX (\S+)", self.text)
            if name is None:
                return bool(indexes) or bool(
                    re.search(r"USING (?:INTEGER )?PRIMARY KEY", self.text)
                )
            return name in indexes
        if self.vendor == "postgresql":
            indexes = re.findall(
                r"(?:Index Scan|Index Only Scan) using (\S+)|Bitmap Index Scan on (\S+)", self.text
            )
            names = [a or b for a, b in indexes]
            return bool(names) if name is None else name in names
        raise self._unsupported("uses_index")

    def shape(self) -> str:
        """Return the plan without costs, timings, row counts or node ids, for checked output."""
        if self.vendor == "sqlite":
            nodes = _sqlite_nodes(self.text)
            if nodes is None:
                return self.text.strip()
            return "\n".join("  " * depth + _sqlite_detail(detail) for depth, detail in nodes)
        if self.vendor == "postgresql":
            return _pg_shape(self.text)
        return self.text.strip()

    def _unsupported(self, what: str) -> PerflabError:
        return PerflabError(
            f"Explain.{what} reads SQLite and PostgreSQL plans; this one is from {self.vendor}. "
            "Read the plan text instead: print(plan)."
        )


def _sqlite_nodes(text: str) -> list[tuple[int, str]] | None:
    """Return (depth, detail) per plan row, from Django's ``id parent notused detail`` lines."""
    depth_of: dict[int, int] = {}
    nodes = []
    for line in text.strip().splitlines():
        match = _SQLITE_ROW.match(line.strip())
        if match is None:
            return None
        node_id, parent = int(match.group(1)), int(match.group(2))
        depth = depth_of.get(parent, -1) + 1
        depth_of[node_id] = depth
        nodes.append((depth, match.group(4)))
    return nodes


def _sqlite_detail(detail: str) -> str:
    # SQLite before 3.36 said "SCAN TABLE x"; newer versions say "SCAN x". Keep one spelling.
    detail = re.sub(r"^(SCAN|SEARCH) TABLE ", r"\1 ", detail)
    return re.sub(r"\s*\(~\d+ rows?\)", "", detail)


def _is_sqlite_table(name: str) -> bool:
    # "SCAN CONSTANT ROW" and "SCAN (subquery-1)" are not tables someone could index.
    return name != "CONSTANT" and not name.startswith("(") and name != "SUBQUERY"


def _sqlite_tree(nodes: list[tuple[int, str]]) -> str:
    """Draw the plan the way the sqlite3 shell does, which learners will meet elsewhere."""
    lines = ["QUERY PLAN"]
    for index, (depth, detail) in enumerate(nodes):
        prefix = ""
        for level in range(depth + 1):
            later_sibling = _has_later_sibling(nodes, index, level)
            if level == depth:
                prefix += "|--" if later_sibling else "`--"
            else:
                prefix += "|  " if later_sibling else "   "
        lines.append(prefix + _sqlite_detail(detail))
    return "\n".join(lines)


def _has_later_sibling(nodes: list[tuple[int, str]], index: int, level: int) -> bool:
    """Return whether a node at ``level`` follows before the branch containing ``index`` ends."""
    for depth, _ in nodes[index + 1 :]:
        if depth < level:
            return False
        if depth == level:
            return True
    return False


def _pg_shape(text: str) -> str:
    lines = []
    in_node_section = True
    for raw in text.splitlines():
        if not raw.strip():
            continue
        stripped = raw.strip()
        if not raw.startswith(" ") and lines:
            # A new top-level section after the plan (Planning:, JIT:, Execution Time: ...).
            in_node_section = False
        if not in_node_section:
            continue
        if not lines or stripped.startswith("->") or re.match(r"(InitPlan|SubPlan|CTE) ", stripped):
            match = _PG_NODE.match(raw.rstrip())
            node = (match.group(1) or "") + match.group(2) if match else raw.rstrip()
            lines.append(node.rstrip())
        elif stripped.startswith(_PG_KEPT_DETAILS):
            lines.append(raw.rstrip())
    return "\n".join(lines)


def explain(
    queryset: QuerySet[Any], *, analyze: bool | None = None, using: str | None = None
) -> Explain:
    """Return the database's plan for ``queryset``, the way each vendor is best read.

    SQLite: EXPLAIN QUERY PLAN (it has no ANALYZE). PostgreSQL: EXPLAIN (ANALYZE, BUFFERS) by
    default, which really runs the query; pass ``analyze=False`` for the planner's guess only.
    """
    from django.db import connections

    if using is not None:
        queryset = queryset.using(using)
    vendor = connections[queryset.db].vendor
    if vendor == "postgresql":
        run = analyze is None or analyze
        text = queryset.explain(analyze=True, buffers=True) if run else queryset.explain()
        return Explain(text=text, vendor=vendor, analyze=run)
    if analyze:
        raise PerflabError(
            f"{vendor} has no EXPLAIN ANALYZE that Django can run; call explain() without "
            "analyze=True, or measure() the query to time it."
        )
    return Explain(text=queryset.explain(), vendor=vendor, analyze=False)


# --- number formatting --------------------------------------------------------------------------


def format_ratio(ratio: float) -> str:
    """Return a ratio rounded the way prose says it: 38, 2.5, 3 (not 3.0)."""
    if math.isinf(ratio) or math.isnan(ratio):
        return "\u221e" if math.isinf(ratio) else "?"
    if round(ratio, 1) >= 10:
        return str(round(ratio))
    text = f"{ratio:.1f}"
    return text.removesuffix(".0")


def format_bytes(size: int | None) -> str:
    """Return a size the way a person reads it: 812 B, 3.4 KiB, 12.1 MiB; "-" when unknown."""
    if size is None:
        return "-"
    if abs(size) < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if abs(value) < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0:
        return math.inf if numerator > 0 else 1.0
    return numerator / denominator


def _ms(value: float) -> str:
    """Format milliseconds with about three significant figures."""
    if math.isnan(value):
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


# --- IPython ------------------------------------------------------------------------------------


def _make_magics_class() -> type:
    """Build the Magics class on demand, so importing perflab.measure needs no IPython."""
    from IPython.core.magic import Magics, cell_magic, magics_class
    from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

    @magics_class
    class MeasureMagics(Magics):
        @magic_arguments()
        @argument("label", nargs="*", help="name for this measurement (default: 'cell')")
        @argument("-r", "--repeat", type=int, default=DEFAULT_REPEAT, help="timed runs")
        @argument("-w", "--warmup", type=int, default=DEFAULT_WARMUP, help="untimed runs first")
        @argument("--using", default="default", help="database alias to capture")
        @cell_magic
        def measure(self, line: str, cell: str) -> Measurement:
            """Measure the cell body like measure(): queries, median time, similar groups."""
            args = parse_argstring(self.measure, line)
            label = " ".join(args.label) or "cell"
            run = _cell_runner(self.shell, cell)
            m = measure(label, run, repeat=args.repeat, warmup=args.warmup, using=args.using)
            self.shell.user_ns["_measure"] = m
            results[label] = m
            return m

    return MeasureMagics


def _cell_runner(shell: InteractiveShell, cell: str) -> Callable[[], Any]:
    """Compile a cell once; return a function that runs it in the user namespace."""
    source = shell.transform_cell(cell)
    try:
        filename = shell.compile.cache(source)
    except AttributeError:
        filename = "<measure cell>"
    tree = ast.parse(source, filename=filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        # Keep the last expression's value as the measurement's result, like a cell's Out[].
        last = compile(ast.Expression(tree.body.pop().value), filename, "eval")
    body = compile(tree, filename, "exec")
    namespace = shell.user_ns

    def run() -> Any:
        exec(body, namespace)
        return eval(last, namespace) if last is not None else None

    return run


def register_magics(ipython: InteractiveShell) -> None:
    """Register ``%%measure`` with ``ipython``; bootstrap calls this for every lab."""
    ipython.register_magics(_make_magics_class())


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Make ``%load_ext perflab.measure`` register the magic."""
    register_magics(ipython)
