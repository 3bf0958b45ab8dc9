"""The capstone's product API (lesson 25), one version per step from naive to fastest.

Every version answers the same question, the catalogue newest first, 20 products a page, each
with its category, tags, review count and average rating, and returns the same items:

- ``naive``: DRF, a serializer that follows every relation per product, page numbers
  (``COUNT(*)`` and ``OFFSET``);
- ``queries``: the same view with ``select_related``, ``prefetch_related`` and the stored
  review counters (lessons 01, 02, 14);
- ``keyset``: DRF's ``CursorPagination``, which seeks instead of counting and skipping (04);
- ``plain``: the same keyset, as ``values()`` turned into JSON with no serializer (05);
- ``cached``: ``plain``, its bytes kept in the ``capstone`` cache per page (06);
- ``bytes``: a page of the same size built once per process: the fastest answer the server can
  give, the ceiling the others are measured against.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import caches
from django.db.models import Avg, Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from rest_framework import generics, pagination, serializers

from shop.models import Product, Tag

__all__ = [
    "CACHE_ALIAS",
    "PAGE_SIZE",
    "KeysetProducts",
    "NaiveProducts",
    "QueriedProducts",
    "cached_products",
    "plain_products",
    "precomputed_bytes",
]

PAGE_SIZE = 20
CACHE_ALIAS = "capstone"
NEWEST_FIRST = ("-created", "-id")
_FIELDS = ("id", "name", "slug", "price", "category", "tags", "review_count", "average_rating")


class NaiveProductSerializer(serializers.ModelSerializer):
    """Follow each relation per product, as a first serializer often does."""

    category = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    review_count = serializers.SerializerMethodField()
    average_rating = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = _FIELDS

    def get_category(self, product: Product) -> str:
        return product.category.name

    def get_tags(self, product: Product) -> list[str]:
        return sorted(tag.name for tag in product.tags.all())

    def get_review_count(self, product: Product) -> int:
        return product.reviews.count()

    def get_average_rating(self, product: Product) -> float | None:
        average = product.reviews.aggregate(average=Avg("rating"))["average"]
        return None if average is None else round(average, 2)


class ProductSerializer(serializers.ModelSerializer):
    """Read what the queryset already fetched: no query per product."""

    category = serializers.CharField(source="category.name")
    tags = serializers.SerializerMethodField()
    review_count = serializers.IntegerField(source="num_reviews")
    average_rating = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = _FIELDS

    def get_tags(self, product: Product) -> list[str]:
        return [tag.name for tag in product.tags.all()]  # prefetched, ordered by name

    def get_average_rating(self, product: Product) -> float | None:
        average = product.average_rating
        return None if average is None else round(average, 2)


class PageNumbers(pagination.PageNumberPagination):
    page_size = PAGE_SIZE


class Keyset(pagination.CursorPagination):
    page_size = PAGE_SIZE
    ordering = NEWEST_FIRST


def _prepared() -> QuerySet[Product]:
    tags = Prefetch("tags", queryset=Tag.objects.order_by("name"))
    return (Product.objects.select_related("category").prefetch_related(tags)
            .order_by(*NEWEST_FIRST))


class NaiveProducts(generics.ListAPIView):
    """Step ``naive``: a query per relation per product, page numbers."""

    serializer_class = NaiveProductSerializer
    pagination_class = PageNumbers

    def get_queryset(self) -> QuerySet[Product]:
        return Product.objects.order_by(*NEWEST_FIRST)


class QueriedProducts(generics.ListAPIView):
    """Step ``queries``: one query for the page and its categories, one for the tags."""

    serializer_class = ProductSerializer
    pagination_class = PageNumbers

    def get_queryset(self) -> QuerySet[Product]:
        return _prepared()


class KeysetProducts(QueriedProducts):
    """Step ``keyset``: the page after a cursor, no ``COUNT(*)``, no ``OFFSET``."""

    pagination_class = Keyset


def _page_items(before: tuple[datetime, int] | None) -> list[dict[str, Any]]:
    """Return a page of products as plain dicts, and the next one's first if there is one.

    Two queries, no model instances: one row more than a page says whether a next page exists.
    """
    products = Product.objects.order_by(*NEWEST_FIRST)
    if before is not None:
        created, pk = before
        # created <= the cursor's, minus its own tie: a range the (created, id) index can seek.
        products = products.filter(created__lte=created).exclude(created=created, id__gte=pk)
    rows = list(products.values("id", "name", "slug", "price", "created", "category__name",
                                "num_reviews", "rating_sum")[:PAGE_SIZE + 1])
    tags: dict[int, list[str]] = {row["id"]: [] for row in rows}
    links = (Product.tags.through.objects.filter(product_id__in=tags)
             .order_by("tag__name").values_list("product_id", "tag__name"))
    for product_id, tag in links:
        tags[product_id].append(tag)
    return [{
        "id": row["id"], "name": row["name"], "slug": row["slug"], "price": str(row["price"]),
        "category": row["category__name"], "tags": tags[row["id"]],
        "review_count": row["num_reviews"],
        "average_rating": (round(row["rating_sum"] / row["num_reviews"], 2)
                           if row["num_reviews"] else None),
        "created": row["created"],
    } for row in rows]


def _parse_before(value: str | None) -> tuple[datetime, int] | None:
    if not value:
        return None
    created, _, pk = value.rpartition("_")
    return datetime.fromisoformat(created), int(pk)


def _plain_page(request: HttpRequest) -> bytes:
    items = _page_items(_parse_before(request.GET.get("before")))
    following = None
    if len(items) > PAGE_SIZE:
        items = items[:PAGE_SIZE]
        last = items[-1]
        cursor = f"{last['created'].isoformat()}_{last['id']}"
        following = f"{request.path}?{urlencode({'before': cursor})}"
    for item in items:
        del item["created"]
    return json.dumps({"next": following, "results": items}, separators=(",", ":")).encode()


def plain_products(request: HttpRequest) -> HttpResponse:
    """Step ``plain``: the keyset page as plain dicts, dumped once, no serializer."""
    try:
        body = _plain_page(request)
    except ValueError:
        return HttpResponseBadRequest("before must be <ISO datetime>_<id>")
    return HttpResponse(body, content_type="application/json")


#: How long step ``cached`` keeps a page's bytes: lesson 25's miss rate is computed from it.
PAGE_CACHE_S = 300


def cached_products(request: HttpRequest) -> HttpResponse:
    """Step ``cached``: the plain page's bytes, kept in the cache per URL for ``PAGE_CACHE_S``."""
    cache = caches[CACHE_ALIAS if CACHE_ALIAS in settings.CACHES else "default"]
    key = "capstone:" + request.get_full_path()
    body = cache.get(key)
    if body is None:
        try:
            body = _plain_page(request)
        except ValueError:
            return HttpResponseBadRequest("before must be <ISO datetime>_<id>")
        cache.set(key, body, PAGE_CACHE_S)
    return HttpResponse(body, content_type="application/json")


_precomputed: dict[str, bytes] = {}


def precomputed_bytes(request: HttpRequest) -> HttpResponse:
    """The ceiling: a first page of the API, built on this process's first call, sent as is."""
    body = _precomputed.get("page")
    if body is None:
        body = _precomputed["page"] = _plain_page(request)
    return HttpResponse(body, content_type="application/json")
