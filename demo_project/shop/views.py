"""Serve the shop's pages the way a beginner first writes them.

These views are slow on purpose: the templates follow foreign keys and count related rows one
product at a time (N+1 queries). The lessons measure them and make them fast; keep them naive.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import httpx
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.generic import DetailView, ListView

from shop.models import Product

__all__ = [
    "ProductDetailView",
    "ProductListView",
    "delivery_quote",
    "delivery_quote_async",
    "healthz",
]


class ProductListView(ListView):
    """List products, 100 a page, each with its category and review count."""

    model = Product
    queryset = Product.objects.order_by("id")
    paginate_by = 100
    context_object_name = "products"
    template_name = "shop/product_list.html"


class ProductDetailView(DetailView):
    """Show one product with its tags and its reviews."""

    model = Product
    context_object_name = "product"
    template_name = "shop/product_detail.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        """Add the product's reviews, newest first."""
        context = super().get_context_data(**kwargs)
        context["reviews"] = self.object.reviews.order_by("-created", "-id")
        return context


def healthz(request: HttpRequest) -> HttpResponse:
    """Return "ok" so scripts can tell the site is up (no database query)."""
    return HttpResponse("ok", content_type="text/plain")


def _carrier_url() -> str | None:
    return f"{settings.CARRIER_API_URL.rstrip('/')}/api/quote" if settings.CARRIER_API_URL else None


_NO_CARRIER = "CARRIER_API_URL is not set: there is no carrier to ask for a quote."
# One client per process (per event loop for the async one), as httpx advises: a client keeps
# its connections open, and making one costs more CPU than a request to a nearby server.
_sync_client: httpx.Client | None = None
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def _carrier() -> httpx.Client:
    global _sync_client
    if _sync_client is None:
        _sync_client = httpx.Client(timeout=10)
    return _sync_client


def _async_carrier() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = _async_clients[loop] = httpx.AsyncClient(timeout=10)
    return client


def delivery_quote(request: HttpRequest) -> HttpResponse:
    """Ask the carrier's API for a delivery quote and pass it on: the page waits on the network.

    No database query and little CPU: while the carrier answers, the worker just waits.
    """
    url = _carrier_url()
    if url is None:
        return HttpResponse(_NO_CARRIER, status=503, content_type="text/plain")
    return JsonResponse({"quote": _carrier().get(url).json()})


async def delivery_quote_async(request: HttpRequest) -> HttpResponse:
    """The same page as an async view: on an ASGI server the worker serves others meanwhile."""
    url = _carrier_url()
    if url is None:
        return HttpResponse(_NO_CARRIER, status=503, content_type="text/plain")
    response = await _async_carrier().get(url)
    return JsonResponse({"quote": response.json()})
