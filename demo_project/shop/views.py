"""Serve the shop's pages the way a beginner first writes them.

These views are slow on purpose: the templates follow foreign keys and count related rows one
product at a time (N+1 queries). The lessons measure them and make them fast; keep them naive.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.generic import DetailView, ListView

from shop.models import Product

__all__ = ["ProductDetailView", "ProductListView", "healthz"]


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
