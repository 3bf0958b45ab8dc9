"""A page that costs one cheap query, so that opening a database connection shows in its time.

Lesson 19 serves it under load: whatever the page does besides the query (templates,
middleware) would hide what connecting to PostgreSQL costs, so it does almost nothing else.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from shop.models import Product


def product_price(request: HttpRequest, product_id: int) -> JsonResponse:
    """Return one product's name and price: one indexed lookup by primary key."""
    row = Product.objects.filter(pk=product_id).values("name", "price").first()
    if row is None:
        return JsonResponse({"error": "no such product"}, status=404)
    return JsonResponse({"name": row["name"], "price": str(row["price"])})
