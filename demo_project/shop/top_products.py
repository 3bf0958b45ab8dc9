"""A category's top products by average rating, with review counts, through Django's ORM.

The question lesson 18 asks five ways (``shop.other_orms`` holds the other four); this module
is Django's way alone, so the views that serve it (``shop.framework_views``,
``shop.ninja_api``) load without SQLAlchemy or Pony: every served worker imports the URLs.
It imports no Django model at import time: ``shop.fastapi_app`` uses it without setting
Django up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from django.db.models import Avg, Count, QuerySet

if TYPE_CHECKING:
    from shop.models import Product

__all__ = [
    "MIN_REVIEWS",
    "TOP",
    "TopProduct",
    "atop_products_django",
    "top_product_row",
    "top_products_django",
    "top_products_queryset",
]

#: A product needs this many reviews to rank: two five-star reviews are no evidence.
MIN_REVIEWS = 15
#: How many products the list shows.
TOP = 10


class TopProduct(TypedDict):
    """One product of the list: what every way of asking returns."""

    id: int
    name: str
    average_rating: float
    reviews: int


def top_product_row(id: int, name: str, average: float, reviews: int) -> TopProduct:
    return {"id": id, "name": name, "average_rating": round(float(average), 2),
            "reviews": int(reviews)}


# --- Django ---------------------------------------------------------------------------------
def top_products_queryset(category_id: int, min_reviews: int = MIN_REVIEWS,
                          top: int = TOP) -> QuerySet[Product]:
    """Return the queryset: products with their average rating and review count, best first."""
    from shop.models import Product  # here, so the FastAPI app can import this module bare

    return (
        Product.objects.filter(category_id=category_id)
        .annotate(average=Avg("reviews__rating"), review_count=Count("reviews"))
        .filter(review_count__gte=min_reviews)
        .order_by("-average", "-review_count", "id")[:top]
    )


def top_products_django(category_id: int, min_reviews: int = MIN_REVIEWS,
                        top: int = TOP) -> list[TopProduct]:
    """Return the top products through Django's ORM, as model instances turned into dicts."""
    return [top_product_row(p.id, p.name, p.average, p.review_count)
            for p in top_products_queryset(category_id, min_reviews, top)]


async def atop_products_django(category_id: int, min_reviews: int = MIN_REVIEWS,
                               top: int = TOP) -> list[TopProduct]:
    """Return the same with the async ORM (``async for``), for an async view."""
    return [top_product_row(p.id, p.name, p.average, p.review_count)
            async for p in top_products_queryset(category_id, min_reviews, top)]
