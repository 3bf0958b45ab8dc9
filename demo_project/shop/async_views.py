"""Show a product with shipping quotes from three carriers: one page written three ways.

The carriers' API is slow (``CARRIER_API_URL``; a lesson points it at ``lab.slow_upstream``),
so the page spends nearly all its time waiting. Lesson 22 serves these versions side by side:

- ``shipping_quotes``: a plain view; it asks the carriers one after the other;
- ``shipping_quotes_async``: an ``async`` view with the async ORM (``aget``, ``acount``,
  ``async for``); it still awaits the carriers one after the other;
- ``shipping_quotes_gather``: the same, but it asks the three carriers at once
  (``asyncio.gather``), so the page waits about one carrier's delay instead of three;
- ``shipping_quotes_blocking``: a mistake kept to be measured, an async view that asks the
  carriers with the sync client: while it waits, its worker's event loop serves no one.

Each answers the same JSON. They reuse ``shop.views``' carrier clients: one ``httpx.Client`` per
process, one ``httpx.AsyncClient`` per event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import aget_object_or_404, get_object_or_404

from shop.models import Product
from shop.views import _NO_CARRIER, _async_carrier, _carrier, _carrier_url

__all__ = [
    "CARRIERS",
    "quote_params",
    "shipping_page",
    "shipping_quotes",
    "shipping_quotes_async",
    "shipping_quotes_blocking",
    "shipping_quotes_gather",
]

#: The carriers asked for a quote: one slow API, told apart by the query string.
CARRIERS = ("parcelpost", "swiftship", "freightline")


def quote_params(carrier: str, product: Product) -> dict[str, str]:
    """Return the query string that asks ``carrier`` to quote for shipping ``product``."""
    return {"carrier": carrier, "product": product.slug}


def shipping_page(
    product: Product, reviews: int, tags: list[str], answers: list[Any]
) -> dict[str, Any]:
    """Return the page's JSON: the product, its review count and tags, one quote per carrier."""
    return {
        "product": {"name": product.name, "category": product.category.name,
                    "price": str(product.price), "reviews": reviews, "tags": tags},
        "quotes": [{"carrier": carrier, "answer": answer}
                   for carrier, answer in zip(CARRIERS, answers, strict=True)],
    }


def _no_carrier() -> HttpResponse:
    return HttpResponse(_NO_CARRIER, status=503, content_type="text/plain")


def shipping_quotes(request: HttpRequest, slug: str) -> HttpResponse:
    """Show the product and ask each carrier in turn: the worker waits three delays."""
    url = _carrier_url()
    if url is None:
        return _no_carrier()
    product = get_object_or_404(Product.objects.select_related("category"), slug=slug)
    reviews = product.reviews.count()
    tags = [tag.name for tag in product.tags.order_by("name")]
    answers = [_carrier().get(url, params=quote_params(c, product)).json() for c in CARRIERS]
    return JsonResponse(shipping_page(product, reviews, tags, answers))


async def shipping_quotes_async(request: HttpRequest, slug: str) -> HttpResponse:
    """The same page as an async view, carriers still asked in turn: the request waits as long.

    While it waits, the event loop serves other requests: the worker does not.
    """
    url = _carrier_url()
    if url is None:
        return _no_carrier()
    product = await aget_object_or_404(Product.objects.select_related("category"), slug=slug)
    reviews = await product.reviews.acount()
    tags = [tag.name async for tag in product.tags.order_by("name")]
    client = _async_carrier()
    answers = []
    for carrier in CARRIERS:
        response = await client.get(url, params=quote_params(carrier, product))
        answers.append(response.json())
    return JsonResponse(shipping_page(product, reviews, tags, answers))


async def shipping_quotes_gather(request: HttpRequest, slug: str) -> HttpResponse:
    """The async page asking the three carriers at once: it waits about one delay."""
    url = _carrier_url()
    if url is None:
        return _no_carrier()
    product = await aget_object_or_404(Product.objects.select_related("category"), slug=slug)
    reviews = await product.reviews.acount()
    tags = [tag.name async for tag in product.tags.order_by("name")]
    client = _async_carrier()
    responses = await asyncio.gather(
        *(client.get(url, params=quote_params(carrier, product)) for carrier in CARRIERS)
    )
    return JsonResponse(shipping_page(product, reviews, tags, [r.json() for r in responses]))


async def shipping_quotes_blocking(request: HttpRequest, slug: str) -> HttpResponse:
    """The async page with a sync client: each call blocks the event loop (a mistake, on purpose).

    Django stops the sync ORM on an event loop (``SynchronousOnlyOperation``); nothing stops a
    sync HTTP client, so the worker serves one request at a time, with no error anywhere.
    """
    url = _carrier_url()
    if url is None:
        return _no_carrier()
    product = await aget_object_or_404(Product.objects.select_related("category"), slug=slug)
    reviews = await product.reviews.acount()
    tags = [tag.name async for tag in product.tags.order_by("name")]
    answers = [_carrier().get(url, params=quote_params(c, product)).json() for c in CARRIERS]
    return JsonResponse(shipping_page(product, reviews, tags, answers))
