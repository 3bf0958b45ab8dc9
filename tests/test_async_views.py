"""Lesson 22's shipping page (sync, async, gathered, blocking) and ``lab.run_async``."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

DELAY_MS = 100
VERSIONS = ("", "async/", "gather/", "blocking/")


@pytest.fixture(scope="module")
def carrier(lab: Any) -> Iterator[Any]:
    """Start the carriers' stand-in and point this process's shop at it, for the module."""
    from django.test import override_settings

    upstream = lab.slow_upstream(DELAY_MS)
    overrides = override_settings(CARRIER_API_URL=upstream.url)
    overrides.enable()
    yield upstream
    overrides.disable()
    upstream.stop()


@pytest.fixture(scope="module")
def slug(lab: Any) -> str:
    from shop.models import Product

    return Product.objects.order_by("id").values_list("slug", flat=True).first()


def _page(lab: Any, path: str) -> Any:
    """Send a GET through the whole stack: the test client for a sync view, else AsyncClient."""
    from django.test import AsyncClient

    if path.endswith("/quotes/"):
        return lab.get(path)
    return lab.run_async(AsyncClient().get(path))


def _timed_ms(call: Any) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def test_every_version_shows_the_same_product_and_three_quotes(
    lab: Any, carrier: Any, slug: str
) -> None:
    from shop.async_views import CARRIERS
    from shop.models import Product

    pages = []
    for version in VERSIONS:
        response = _page(lab, f"/products/{slug}/quotes/{version}")
        assert response.status_code == 200, version
        pages.append(response.json())
    assert all(page == pages[0] for page in pages)
    product = Product.objects.get(slug=slug)
    assert pages[0]["product"]["name"] == product.name
    assert pages[0]["product"]["reviews"] == product.reviews.count()
    assert [q["carrier"] for q in pages[0]["quotes"]] == list(CARRIERS)
    asked = [q["answer"]["path"] for q in pages[0]["quotes"]]
    assert asked == [f"/api/quote?carrier={c}&product={slug}" for c in CARRIERS]


def test_gather_waits_about_one_delay_and_the_others_three(
    lab: Any, carrier: Any, slug: str
) -> None:
    page = f"/products/{slug}/quotes/"
    _page(lab, page + "gather/")  # warm: the loop's client, the connection to the carrier
    in_turn = [_timed_ms(lambda v=v: _page(lab, page + v)) for v in ("", "async/")]
    gathered = min(_timed_ms(lambda: _page(lab, page + "gather/")) for _ in range(3))
    assert all(ms >= 3 * DELAY_MS for ms in in_turn)
    assert DELAY_MS <= gathered < 2.5 * DELAY_MS


def test_a_blocking_async_view_makes_the_next_request_wait(
    lab: Any, carrier: Any, slug: str
) -> None:
    from django.test import AsyncClient

    client = AsyncClient()

    async def two_at_once(path: str) -> None:
        await asyncio.gather(client.get(path), client.get(path))

    page = f"/products/{slug}/quotes/"
    awaiting = _timed_ms(lambda: lab.run_async(two_at_once(page + "async/")))
    blocking = _timed_ms(lambda: lab.run_async(two_at_once(page + "blocking/")))
    assert 3 * DELAY_MS <= awaiting < 5 * DELAY_MS  # side by side: one page's three delays
    assert blocking >= 6 * DELAY_MS  # one after the other: the loop was stuck in each call


def test_without_a_carrier_every_version_says_what_is_missing(lab: Any, slug: str) -> None:
    from django.test import override_settings

    with override_settings(CARRIER_API_URL=""):
        for version in VERSIONS:
            response = _page(lab, f"/products/{slug}/quotes/{version}")
            assert response.status_code == 503, version
            assert b"CARRIER_API_URL is not set" in response.content


def test_an_unknown_product_is_a_404_in_every_version(lab: Any, carrier: Any) -> None:
    for version in VERSIONS:
        assert _page(lab, f"/products/no-such-product/quotes/{version}").status_code == 404


def test_run_async_refuses_the_sync_orm_on_the_loop_as_a_served_worker_does(lab: Any) -> None:
    from django.core.exceptions import SynchronousOnlyOperation

    from shop.models import Product

    async def first_try() -> str:
        return Product.objects.get(pk=1).name

    with pytest.raises(SynchronousOnlyOperation):
        lab.run_async(first_try())
    # The kernel's own setting is back: cells may query inside Jupyter's loop again.
    assert os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] == "true"
    assert lab.run_async(Product.objects.aget(pk=1)).name == Product.objects.get(pk=1).name


def test_run_async_counts_the_async_orms_queries_on_the_labs_connection(lab: Any) -> None:
    from shop.models import Product

    async def page() -> int:
        product = await Product.objects.aget(pk=1)
        return await product.reviews.acount()

    m = lab.measure("async ORM", lambda: lab.run_async(page()), repeat=2)
    assert m.query_count == 2 and m.result == Product.objects.get(pk=1).reviews.count()


def test_run_async_lends_a_running_loops_connection_as_jupyter_cells_need(lab: Any) -> None:
    """In Jupyter the cell's thread runs an event loop, and Django keeps that loop's
    connections apart from the thread's own: the run must use the cell's, or lab.measure
    counts nothing."""
    from django.db import connection

    from shop.models import Product

    async def cell() -> tuple[int, int, bool]:  # runs like a cell: a loop runs in this thread
        before = id(connection.connection) if connection.connection else None
        m = lab.measure("aget", lambda: lab.run_async(Product.objects.aget(pk=1)), repeat=2)
        same = before is None or id(connection.connection) == before
        return m.query_count, Product.objects.filter(pk=1).count(), same

    assert asyncio.run(cell()) == (1, 1, True)


def test_thread_sensitive_calls_share_the_calling_thread_and_others_use_a_pool(
    lab: Any,
) -> None:
    from asgiref.sync import ThreadSensitiveContext, sync_to_async

    def waits() -> str:
        time.sleep(0.05)
        return threading.current_thread().name

    async def three(thread_sensitive: bool) -> list[str]:
        call = sync_to_async(waits, thread_sensitive=thread_sensitive)
        return list(await asyncio.gather(call(), call(), call()))

    async def in_a_request() -> list[str]:
        async with ThreadSensitiveContext():  # as Django's ASGI handler opens one per request
            return await three(True)

    async def two_requests() -> list[list[str]]:
        return list(await asyncio.gather(in_a_request(), in_a_request()))

    assert set(lab.run_async(three(True))) == {threading.current_thread().name}
    assert len(set(lab.run_async(three(False)))) == 3
    first, second = lab.run_async(two_requests())
    assert len(set(first)) == len(set(second)) == 1 and set(first) != set(second)


@pytest.mark.services
def test_served_workers_keep_django_s_async_safety_check_on(lab: Any) -> None:
    import psutil

    server = lab.serve(worker_class="uvicorn")
    try:
        environments = [psutil.Process(pid).environ() for pid in server.worker_pids()]
    finally:
        server.stop()
    # This process allows sync queries in Jupyter's loop; a served worker must not inherit it.
    assert os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] == "true"
    assert [env.get("DJANGO_ALLOW_ASYNC_UNSAFE") for env in environments] == [""]


@pytest.mark.services
def test_the_upstream_takes_a_burst_of_new_connections_without_a_retry(lab: Any) -> None:
    """A full listen backlog drops SYNs, and each dropped client retries a second later."""
    import http.client
    from urllib.parse import urlsplit

    upstream = lab.slow_upstream(50)
    address = urlsplit(upstream.url)
    clients = 64
    together = threading.Barrier(clients)

    def one(n: int) -> float:
        together.wait()  # every client connects at the same moment, as gather's requests do
        started = time.perf_counter()
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        try:
            connection.request("GET", f"/api/burst?n={n}")
            assert connection.getresponse().status == 200
        finally:
            connection.close()
        return (time.perf_counter() - started) * 1000

    try:
        with ThreadPoolExecutor(max_workers=clients) as pool:
            times = list(pool.map(one, range(clients)))
    finally:
        upstream.stop()
    assert max(times) < 900, sorted(times)[-5:]
