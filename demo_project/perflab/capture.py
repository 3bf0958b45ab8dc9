"""Capture every statement a connection sends inside a block, as assertNumQueries counts them.

One ``execute_wrapper`` records each statement, renders it with the backend's own
``last_executed_query`` (as django-debug-toolbar's tracker does) and notes the line of the
learner's code that sent it. Transaction statements Django sends through the driver (``COMMIT``,
``ROLLBACK``, ``BEGIN`` on PostgreSQL) are read from the query log as they are appended, so the
log's 9,000-entry limit never matters and nothing falls back to another rendering.
"""

from __future__ import annotations

import linecache
import os
import sys
import sysconfig
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from time import perf_counter
from typing import Any, NamedTuple

from perflab.sql import elide

__all__ = ["CapturedQuery", "QueryGroup", "Recording", "capture", "groups", "print_sql"]


@dataclass(frozen=True)
class CapturedQuery:
    """Hold one query as sent: raw SQL and params for grouping, and how Django logged it."""

    sql: str
    params: Any
    many: bool
    duration_ms: float
    rendered: str
    #: The learner's code that sent it: a cell's line, a project file's line, or a template tag.
    source: str | None = None

    @property
    def elided(self) -> str:
        """Return the rendered SQL with the select list elided, for reading."""
        return elide(self.rendered)


class _SqlCount(NamedTuple):
    sql: str
    count: int


class QueryGroup(_SqlCount):
    """Pair a repeated query (elided SQL) with how many times it ran, and what sent it.

    Unpacks as ``sql, count``; ``source`` names the learner's line (or template tag) that sent
    most of the group, as the debug toolbar's stack traces do: the N+1 points at its own source.
    """

    source: str | None

    def __new__(cls, sql: str, count: int, source: str | None = None) -> QueryGroup:
        group = super().__new__(cls, sql, count)
        group.source = source
        return group

    def __str__(self) -> str:
        sent_by = f", sent by {self.source}" if self.source else ""
        return f"{self.count} similar{sent_by}: {self.sql}"


_TRANSACTION_STATEMENTS = ("BEGIN", "COMMIT", "ROLLBACK")


class Recording:
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
                                  self._render(context, sql, params, many), sent_from())
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

    def __init__(self, previous: deque[dict[str, Any]], recording: Recording) -> None:
        super().__init__(previous, maxlen=previous.maxlen)
        self.previous = previous
        self._recording = recording

    def append(self, entry: dict[str, Any]) -> None:
        self._recording.log(entry)
        self.previous.append(entry)
        super().append(entry)




def groups(queries: list[CapturedQuery], key: Callable[[CapturedQuery], Any]) -> list[QueryGroup]:
    """Return the queries that share ``key`` two times or more, most repeated first."""
    counts = Counter(key(q) for q in queries)
    first_sql: dict[Any, str] = {}
    sources: dict[Any, Counter[str | None]] = {}
    for q in queries:
        first_sql.setdefault(key(q), q.sql)
        sources.setdefault(key(q), Counter())[q.source] += 1
    # Counter.most_common keeps first-seen order among equal counts, so output is stable.
    return [
        QueryGroup(elide(first_sql[k]), n, sources[k].most_common(1)[0][0])
        for k, n in counts.most_common()
        if n >= 2
    ]


@contextmanager
def capture(using: str) -> Iterator[Recording]:
    """Capture every statement on connection ``using`` inside the block."""
    from django.db import connections

    connection = connections[using]
    recording = Recording(connection)
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


# --- where a query came from ----------------------------------------------------------------------


@cache
def _library_folders() -> tuple[str, ...]:
    """Return the folders never holding the learner's code: Django, perflab, stdlib, packages."""
    import django

    folders = {Path(django.__file__).parent, Path(__file__).parent}
    paths = sysconfig.get_paths()
    folders.update(Path(paths[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib"))
    prefixes = set()
    for folder in folders:
        prefixes.add(os.path.join(str(folder), ""))
        prefixes.add(os.path.join(os.path.realpath(folder), ""))
    return tuple(sorted(prefixes))


def sent_from() -> str | None:
    """Return the learner's line that sent the current query, or the template tag that did.

    Walks out from the driver call: the first frame outside Django, perflab, the standard
    library and installed packages is the learner's (a notebook cell, or a project file such as
    ``shop/views.py``). A template node met on the way is closer to the cause than the view that
    rendered the template, so it wins. A cell is named by its code, never its file (a temporary
    path with the kernel's pid in it).
    """
    libraries = _library_folders()
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "render_annotated" and code.co_filename.endswith(_TEMPLATE_BASE):
            node = frame.f_locals.get("self")
            described = _template_node(node)
            if described:
                return described
        filename = code.co_filename
        if not filename.startswith(libraries) and not filename.startswith("<frozen"):
            return _code_line(filename, frame.f_lineno)
        frame = frame.f_back
    return None


_TEMPLATE_BASE = os.path.join("django", "template", "base.py")


def _template_node(node: Any) -> str | None:
    token = getattr(node, "token", None)
    if token is None:
        return None
    kind = getattr(token.token_type, "name", "")
    text = {"VAR": "{{{{ {} }}}}", "BLOCK": "{{% {} %}}"}.get(kind, "{}").format(token.contents)
    origin = getattr(node, "origin", None)
    name = getattr(origin, "name", "") or ""
    where = _project_path(name)
    return f"`{text}` ({where}:{token.lineno})" if where else f"`{text}`"


def _code_line(filename: str, lineno: int) -> str:
    text = linecache.getline(filename, lineno).strip() or "?"
    where = _project_path(filename)
    return f"`{text}` ({where}:{lineno})" if where else f"`{text}`"


def _project_path(filename: str) -> str | None:
    """Return ``filename`` relative to the demo project when it is one of its files."""
    from perflab.paths import REPO_ROOT

    try:
        return Path(filename).resolve().relative_to(REPO_ROOT / "demo_project").as_posix()
    except (ValueError, OSError):
        return None
