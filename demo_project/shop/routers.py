"""Send reads to a replica and writes to the primary; read from the primary after a write.

``PrimaryReplicaRouter`` is the router of Django's multiple-databases guide: every read goes to
a replica, every write to ``default``, the primary. A replica is behind the primary by its
replication lag, so a page that reads right after its own write can miss it.
``PinningRouter`` reads from the primary for the rest of a *scope* once the scope wrote:
``request_scope()`` is one request (``PinAfterWriteMiddleware`` opens one per request, and
keeps the pin for ``PIN_SECONDS`` with a cookie, across the redirect after a POST);
``pin_to_primary()`` pins a block from its start (a task that checks what it already did).

A router sees only the ORM: a raw ``connection.cursor()`` is the primary's, whatever the router
says, and ``transaction.atomic()`` opens a transaction on one database only, so reads inside it
still go to the replica. Both are in lesson 12.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse

__all__ = [
    "PIN_COOKIE",
    "PIN_SECONDS",
    "PRIMARY",
    "PinAfterWriteMiddleware",
    "PinningRouter",
    "PrimaryReplicaRouter",
    "pin_to_primary",
    "request_scope",
]

PRIMARY = "default"
#: How long after a write a browser's requests keep reading from the primary: longer than the
#: replicas' usual lag, short enough that the replicas take the reads back soon.
PIN_SECONDS = 15
PIN_COOKIE = "read_primary"


class PrimaryReplicaRouter:
    """Read from a replica (one at random when there are several); write to the primary."""

    def __init__(self, replicas: Sequence[str] = ("replica",)) -> None:
        self.replicas = list(replicas)

    def db_for_read(self, model: type, **hints: Any) -> str:
        return random.choice(self.replicas)

    def db_for_write(self, model: type, **hints: Any) -> str:
        return PRIMARY

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # every database holds the same rows: a replica is a copy of the primary

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None,
                      **hints: Any) -> bool:
        return db == PRIMARY  # replicas replay the primary's schema changes; never migrate them


@dataclass
class _Scope:
    pinned: bool = False  # read from the primary from the start (a cookie, pin_to_primary)
    wrote: bool = False


_scope: ContextVar[_Scope | None] = ContextVar("shop_routing_scope", default=None)


@contextmanager
def request_scope(*, pinned: bool = False) -> Iterator[None]:
    """Open a scope (one request, one task): once it writes, its reads go to the primary."""
    token = _scope.set(_Scope(pinned=pinned))
    try:
        yield
    finally:
        _scope.reset(token)


@contextmanager
def pin_to_primary() -> Iterator[None]:
    """Read from the primary inside the block, as if it had written already."""
    with request_scope(pinned=True):
        yield


class PinningRouter(PrimaryReplicaRouter):
    """Route as PrimaryReplicaRouter, but a scope that wrote reads from the primary after."""

    def db_for_read(self, model: type, **hints: Any) -> str:
        scope = _scope.get()
        if scope is not None and (scope.pinned or scope.wrote):
            return PRIMARY
        return super().db_for_read(model, **hints)

    def db_for_write(self, model: type, **hints: Any) -> str:
        scope = _scope.get()
        if scope is not None:
            scope.wrote = True
        return PRIMARY


class PinAfterWriteMiddleware:
    """Give each request a scope; after one that wrote, pin the browser with a cookie.

    The redirect after a POST is a new request: without the cookie it would read the page from
    a replica that may not have the write yet. The cookie holds no data, only "for
    PIN_SECONDS, read from the primary".
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        scope = _Scope(pinned=PIN_COOKIE in request.COOKIES)
        token = _scope.set(scope)
        try:
            response = self.get_response(request)
        finally:
            _scope.reset(token)
        if scope.wrote:
            response.set_cookie(PIN_COOKIE, "1", max_age=PIN_SECONDS, httponly=True,
                                samesite="Lax")
        return response
