"""Serve the top-rated products with Django Ninja (lesson 18): a route, a Schema, no views.

Ninja validates what the function returns against the ``response`` schema (pydantic) and
renders it as JSON; its own URLs are included under ``/lesson18/ninja/`` by ``shop.urls``.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import NinjaAPI, Schema

from shop.top_products import TopProduct, top_products_django

__all__ = ["TopProductSchema", "api"]

api = NinjaAPI(urls_namespace="lesson18-ninja", docs_url=None, openapi_url=None)


class TopProductSchema(Schema):
    """Describe one row of the answer, as pydantic validates it."""

    id: int
    name: str
    average_rating: float
    reviews: int


@api.get("/categories/{category_id}/top-products/", response=list[TopProductSchema])
def top_products(request: HttpRequest, category_id: int) -> list[TopProduct]:
    """Answer the top products: Ninja turns the dicts into schemas, then into JSON."""
    return top_products_django(category_id)
