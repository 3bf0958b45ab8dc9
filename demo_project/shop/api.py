"""Serve the shop's JSON API with Django REST framework."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import generics
from rest_framework.exceptions import ValidationError

from shop.models import Review
from shop.serializers import ReviewSerializer

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "ReviewListAPIView"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _positive_int_param(value: str, *, name: str) -> int:
    """Return a query parameter as a positive int, or answer 400 with the reason."""
    try:
        number = int(value)
    except ValueError:
        raise ValidationError({name: "Must be an integer."}) from None
    if number < 1:
        raise ValidationError({name: "Must be 1 or more."})
    return number


class ReviewListAPIView(generics.ListAPIView):
    """List the most recent reviews; ``?product=<id>`` filters, ``?limit=N`` (max 1000)."""

    serializer_class = ReviewSerializer

    def get_queryset(self) -> QuerySet[Review]:
        """Return the newest reviews, optionally for one product (no joins: N+1 on purpose)."""
        params = self.request.query_params
        reviews = Review.objects.order_by("-created", "-id")
        if "product" in params:
            reviews = reviews.filter(
                product_id=_positive_int_param(params["product"], name="product")
            )
        limit = DEFAULT_LIMIT
        if "limit" in params:
            limit = min(_positive_int_param(params["limit"], name="limit"), MAX_LIMIT)
        return reviews[:limit]
