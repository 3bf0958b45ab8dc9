"""The lab's methods for lesson 18, which leaves Django's ORM and views for other libraries.

Lesson 18 asks one question through Django's ORM, raw SQL, SQLAlchemy and PonyORM, and serves
one JSON endpoint with DRF, Django Ninja, an async Django view and FastAPI. Two things it needs
that the rest of the lab doesn't:

- ``lab.statements(func, engine=...)``: the SQL a call sends, whoever sends it. Django's
  ``CaptureQueriesContext`` sees only Django's connection; SQLAlchemy's engine and Pony keep
  their own, so each is listened to in its own way (an engine event, Pony's SQL logger).
- ``lab.asgi_get(app, path)``: one request through any ASGI application in this kernel (httpx's
  ASGI transport on the lab's event loop), to time FastAPI as ``lab.get`` times Django.
- ``lab.time_split(func, inside=...)``: how much of each call of ``func`` is spent inside some
  function it calls (the query), and how much around it (the framework), measured in the same
  calls: subtracting two separate timings leaves mostly noise on a busy machine.

``pony_status`` says whether PonyORM works on this Python: Pony reads the bytecode of
generator expressions, so a new Python can break it before Pony catches up
(``%%requires pony``).
"""

from __future__ import annotations

import functools
import inspect
import logging
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["Frameworks", "SplitTime", "Statement", "pony_status"]

_PONY_INSTALL = "Install: .venv/bin/pip install 'pony>=0.7.20' (or use a Python Pony supports)."


@dataclass(frozen=True)
class Statement:
    """One SQL statement a call sent: which library sent it, and its text (no parameters)."""

    library: str
    sql: str

    def __str__(self) -> str:
        return f"-- {self.library}\n{self.sql.strip()}"


@dataclass(frozen=True)
class SplitTime:
    """Each call's whole time, and the part of it spent inside the functions named (medians)."""

    label: str
    calls: int
    total_ms: float
    inside_ms: float
    #: The median of each call's time around the functions named (the framework's, for an
    #: endpoint): per call, so a slow moment that stretches a whole call cancels out.
    outside_ms: float

    @property
    def outside_share(self) -> float:
        """Return the part of each call spent outside the functions named, from 0 to 1."""
        return self.outside_ms / self.total_ms if self.total_ms else 0.0

    def __str__(self) -> str:
        return (f"{self.label}: {self.total_ms:,.1f} ms a call, {self.inside_ms:,.1f} ms inside, "
                f"{self.outside_ms:,.1f} ms around it ({self.outside_share:.0%})")


class Frameworks:
    """Mix into ``perflab.lab.Lab`` the methods of lesson 18 (other ORMs and frameworks)."""

    @staticmethod
    def statements(func: Callable[[], Any], *, engine: Any = None) -> list[Statement]:
        """Run ``func`` and return every SQL statement it sent, through Django, ``engine``, Pony.

        Each library has its own connection; listening to all three shows what each one sends
        for the same question, and how many statements that takes.
        """
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        sent: list[Statement] = []
        with _sqlalchemy_listener(engine, sent), _pony_listener(sent), \
                CaptureQueriesContext(connection) as django:
            func()
        return [Statement("Django", query["sql"]) for query in django.captured_queries] + sent

    @staticmethod
    def asgi_get(app: Any, path: str) -> Any:
        """Send one GET to the ASGI ``app`` in this kernel and return httpx's response.

        The request goes through the whole application (routing, validation, rendering)
        without a server or a socket: what ``lab.get`` is for Django, for any ASGI app.
        """
        import httpx

        from perflab import event_loop

        async def get() -> Any:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://lab") as client:
                return await client.get(path)

        return event_loop.run(get())

    @staticmethod
    def time_split(
        label: str,
        func: Callable[[], Any],
        *,
        inside: Sequence[tuple[Any, str]],
        repeat: int = 20,
        warmup: int = 2,
    ) -> SplitTime:
        """Time ``func``, and the part of each call spent in the functions ``inside`` names.

        ``inside`` lists ``(module_or_object, "name")`` pairs: where the caller looks the
        function up, so that is where it is wrapped (sync or async) while this runs. Both
        times come from the same calls; the medians over ``repeat`` calls are returned.
        """
        from perflab.measure import QUICK_REPEAT, quick

        if quick():
            repeat, warmup = min(repeat, QUICK_REPEAT), 0
        spent: list[float] = []
        totals: list[float] = []
        insides: list[float] = []
        outsides: list[float] = []
        with ExitStack() as stack:
            for owner, name in inside:
                stack.enter_context(_timed(owner, name, spent))
            for _ in range(warmup):
                func()
            for _ in range(repeat):
                spent.clear()
                started = time.perf_counter()
                func()
                totals.append((time.perf_counter() - started) * 1000)
                insides.append(sum(spent))
                outsides.append(max(totals[-1] - insides[-1], 0.0))
        return SplitTime(label, repeat, statistics.median(totals), statistics.median(insides),
                         statistics.median(outsides))


@contextmanager
def _timed(owner: Any, name: str, spent: list[float]) -> Iterator[None]:
    """Wrap ``owner.name`` so each call adds its milliseconds to ``spent``; put it back after."""
    original = getattr(owner, name)
    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                spent.append((time.perf_counter() - started) * 1000)
    else:
        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent.append((time.perf_counter() - started) * 1000)
    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextmanager
def _sqlalchemy_listener(engine: Any, sent: list[Statement]) -> Iterator[None]:
    """Add to ``sent`` each statement ``engine`` sends while the block runs."""
    if engine is None:
        yield
        return
    from sqlalchemy import event

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(Statement("SQLAlchemy", statement))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", before)


class _PonySQL(logging.Handler):
    """Keep the SQL Pony logs; with a handler on its logger, Pony logs instead of printing."""

    def __init__(self, sent: list[Statement]) -> None:
        super().__init__(logging.INFO)
        self.sent = sent

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "pony.orm.sql":  # not its notes on connections and transactions
            self.sent.append(Statement("Pony", record.getMessage()))


@contextmanager
def _pony_listener(sent: list[Statement]) -> Iterator[None]:
    """Add to ``sent`` each statement Pony sends while the block runs (when Pony is there)."""
    try:
        from pony.orm import core
    except ImportError:
        yield
        return
    logger = logging.getLogger("pony.orm")  # the SQL logger's parent: Pony's notes come too
    handler, level, propagate = _PonySQL(sent), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    was = core.local.debug, core.local.show_values
    core.set_sql_debug(True, show_values=False)
    try:
        yield
    finally:
        core.set_sql_debug(*was)
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def pony_status() -> tuple[bool, str]:
    """Return whether PonyORM imports and translates a query on this Python, and why not.

    Pony decompiles generator expressions, so it breaks on a Python whose bytecode it does not
    know yet; a cell that needs it says so (``%%requires pony``) instead of failing.
    """
    import sys

    version = ".".join(map(str, sys.version_info[:2]))
    try:
        from pony import orm
    except ImportError:
        return False, f"PonyORM is not installed in this kernel. {_PONY_INSTALL}"
    try:
        db = orm.Database()

        class Probe(db.Entity):  # type: ignore[name-defined]
            number = orm.Required(int)

        db.bind(provider="sqlite", filename=":memory:")
        db.generate_mapping(create_tables=True)
        with orm.db_session:
            orm.select(p for p in Probe if p.number > 1)[:]
    except Exception as exc:  # a decompiler error on new bytecode has no one type
        return False, (f"PonyORM cannot translate a query on Python {version} "
                       f"({type(exc).__name__}). {_PONY_INSTALL}")
    return True, ""
