"""Serve the product page and a session-backed page the ways lesson 21 compares at the HTTP layer.

``product_page`` renders the full product page in a fixed number of queries (lesson 01's fix),
so a lesson can set what a conditional GET saves against a known cost. ``product_page_etag``
and ``product_page_last_modified`` wrap it in Django's ``etag`` and ``last_modified``
decorators: one small query answers "has it changed?" before the view runs, and a browser's
copy that is still current gets a 304 without the page being built. ``recently_viewed`` reads
and writes the session on every request, whatever backend ``SESSION_ENGINE`` names.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.db.models import Max, Prefetch
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import etag, last_modified, require_GET

from shop.models import Product, Review

__all__ = [
    "RECENTLY_VIEWED",
    "product_etag",
    "product_last_modified",
    "product_page",
    "product_page_etag",
    "product_page_last_modified",
    "recently_viewed",
]

#: How many product ids the session keeps, newest first.
RECENTLY_VIEWED = 10
#: The product's columns that the page shows or that change when a review is added. Product
#: has no "updated" column, so these values, not a timestamp, tell one version from the next.
ETAG_FIELDS = ("id", "price", "stock", "num_reviews", "rating_sum")


@require_GET
def product_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Render the product page (shop/product_detail.html) in three queries, whatever it holds.

    The product with its category, its tags, and its reviews with their authors: a fixed
    cost, so what a conditional GET saves is the page's work, not an N+1 left in it.
    """
    product = get_object_or_404(
        Product.objects.select_related("category").prefetch_related(
            "tags",
            Prefetch("reviews", queryset=Review.objects.select_related("author")
                     .order_by("-created", "-id"), to_attr="newest_reviews"),
        ),
        slug=slug,
    )
    context = {"product": product, "reviews": product.newest_reviews}
    return render(request, "shop/product_detail.html", context)


def product_etag(request: HttpRequest, slug: str) -> str | None:
    """Return a version tag for the product's page from one small query; None if it is gone.

    A hash of the columns that change whenever the page does (a new review moves num_reviews
    and rating_sum): invalidation comes with the data, with nothing to purge.
    """
    values = Product.objects.filter(slug=slug).values_list(*ETAG_FIELDS).first()
    if values is None:
        return None
    return hashlib.blake2b(repr(values).encode(), digest_size=12).hexdigest()


def product_last_modified(request: HttpRequest, slug: str) -> datetime | None:
    """Return when the product's newest review was written: the only time the shop stores.

    Product has no "updated" column, so a change of price or stock moves nothing here.
    """
    return Review.objects.filter(product__slug=slug).aggregate(newest=Max("created"))["newest"]


product_page_etag = etag(product_etag)(product_page)
product_page_last_modified = last_modified(product_last_modified)(product_page)


@require_GET
def recently_viewed(request: HttpRequest, pk: int) -> JsonResponse:
    """Put product ``pk`` first in the session's recently viewed list; return the list.

    No query of its own: every query this view sends comes from the session backend.
    """
    seen = [pk, *(other for other in request.session.get("recently_viewed", []) if other != pk)]
    request.session["recently_viewed"] = seen[:RECENTLY_VIEWED]
    return JsonResponse({"recently_viewed": seen[:RECENTLY_VIEWED]})
