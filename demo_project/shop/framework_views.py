"""Serve one JSON endpoint, a category's top-rated products, in three Django flavours (lesson 18).

Each answers the same JSON body as ``shop.fastapi_app``: a list of ``{"id", "name",
"average_rating", "reviews"}`` from ``shop.other_orms``' query. They differ only in the
framework that turns the rows into a response:

- ``TopProductsAPIView``: Django REST framework, an ``APIView`` and a ``Serializer``;
- ``shop.ninja_api``: Django Ninja, a ``NinjaAPI`` route with a ``Schema`` (pydantic);
- ``top_products_async``: a plain ``async`` Django view with the async ORM and ``JsonResponse``.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from shop.top_products import atop_products_django, top_products_django

__all__ = ["TopProductSerializer", "TopProductsAPIView", "top_products_async"]


class TopProductSerializer(serializers.Serializer):
    """Describe one row of the answer, as DRF validates and renders it."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    average_rating = serializers.FloatField()
    reviews = serializers.IntegerField()


class TopProductsAPIView(APIView):
    """Answer the top products with DRF: JSON only, no authentication to run."""

    renderer_classes = [JSONRenderer]
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    def get(self, request: Request, category_id: int) -> Response:
        rows = top_products_django(category_id)
        return Response(TopProductSerializer(rows, many=True).data)


async def top_products_async(request: HttpRequest, category_id: int) -> JsonResponse:
    """Answer the top products from an async view, with the async ORM."""
    return JsonResponse(await atop_products_django(category_id), safe=False)
