"""Run a lesson's coroutines on an event loop of the lab's own, as an ASGI worker runs a request.

Jupyter runs every cell inside its own event loop, so a cell can't ``asyncio.run()`` a
coroutine, Django's ``async_to_sync`` refuses to start there, and ``lab.measure`` (which calls
plain functions) could not time one. The toolkit also lets sync ORM calls through in the kernel
(``DJANGO_ALLOW_ASYNC_UNSAFE``, see ``perflab.django_setup``), where a served worker stops them.

``EventLoop`` keeps one loop in a daemon thread for the kernel's lifetime, so what a worker
keeps per loop (an ``httpx.AsyncClient``) is reused from run to run, as in a worker.
``run(awaitable)`` runs one coroutine there the way Django runs an async request, and waits:

- Django's async-safety check is on: a sync ORM call on the loop raises
  ``SynchronousOnlyOperation``, as in a uvicorn worker;
- ``sync_to_async`` calls with ``thread_sensitive=True`` (the default, and what the async ORM
  uses underneath) run one at a time in the calling thread, as Django's ASGI handler runs each
  request's in one thread of its own: their queries use the lab's connection, and
  ``lab.measure`` counts them. ``thread_sensitive=False`` calls run in the loop's thread pool,
  each thread on a connection of its own.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from perflab.errors import PerflabError

__all__ = ["EventLoop", "run"]

_T = TypeVar("_T")
_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


class EventLoop:
    """Keep an event loop running in a daemon thread, started on first use."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """Return the running loop, starting its thread the first time."""
        with self._lock:
            if self._loop is None or not self._loop.is_running():
                loop = asyncio.new_event_loop()
                started = threading.Event()
                thread = threading.Thread(target=_serve_forever, args=(loop, started),
                                          name="perflab-event-loop", daemon=True)
                thread.start()
                started.wait()
                self._loop, self._thread = loop, thread
                weakref.finalize(self, _stop, loop, thread)
            return self._loop

    def run(self, awaitable: Awaitable[_T]) -> _T:
        """Run ``awaitable`` on the loop as one async request; return its result or raise.

        The calling thread serves the request's thread-sensitive ``sync_to_async`` calls while
        it waits (as ``async_to_sync`` does), with no event loop of its own meanwhile.
        """
        from asgiref.current_thread_executor import CurrentThreadExecutor
        from asgiref.sync import AsyncToSync

        if threading.current_thread() is self._thread:
            raise PerflabError("lab.run_async() was called on the lab's own loop: await it.")
        loop = self.loop
        executor = CurrentThreadExecutor(None)
        # Where asgiref sends a thread-sensitive call made on this loop: to this thread.
        AsyncToSync.loop_thread_executors[loop] = executor
        try:
            with _as_a_request_thread():
                future = asyncio.run_coroutine_threadsafe(_awaited(awaitable), loop)
                try:
                    executor.run_until_future(future)
                    return future.result()
                finally:
                    future.cancel()  # only still running when this thread was interrupted
        finally:
            AsyncToSync.loop_thread_executors.pop(loop, None)


@contextmanager
def _as_a_request_thread() -> Iterator[None]:
    """Make this thread what a request's sync thread is in a worker, with the lab's connections.

    No event loop runs in it meanwhile (Jupyter's is set aside) and Django's async-safety check
    is on. Django keeps a thread's connections apart from those of the event loop that runs in
    it (asgiref's thread-critical Local): a cell's connection is the loop's, so it is lent to
    the thread for the run, and the queries the run sends are the lab's, counted by
    ``lab.measure``.
    """
    from django.db import connections

    outer_loop = asyncio._get_running_loop()  # Jupyter's, while a cell runs
    lent = connections.all() if outer_loop is not None else []
    unsafe = os.environ.pop(_UNSAFE, None)
    asyncio._set_running_loop(None)
    try:
        for connection in lent:
            connections[connection.alias] = connection
        yield
    finally:
        for connection in lent:
            del connections[connection.alias]
        asyncio._set_running_loop(outer_loop)
        if unsafe is not None:
            os.environ[_UNSAFE] = unsafe


async def _awaited(awaitable: Awaitable[_T]) -> _T:
    return await awaitable


def _serve_forever(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    loop.run_forever()


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    if loop.is_running():
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


_LOOP = EventLoop()


def run(awaitable: Awaitable[_T]) -> _T:
    """Run ``awaitable`` on this kernel's own event loop as one async request (see the module)."""
    return _LOOP.run(awaitable)
