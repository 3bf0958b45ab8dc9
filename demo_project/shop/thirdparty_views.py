"""Serve lesson 15's product page with its third-party scripts loaded one of five ways.

The page is the same product page each time; only how it asks for an analytics script and a
chat widget from another origin changes: ``blocking`` (plain ``<script src>`` in the head),
``defer``, ``async``, ``interaction`` (analytics ``async``, the widget injected only when a
visitor clicks "Chat"), or ``after-load`` (both injected once the page's load event has fired:
the lesson's stretch exercise). The scripts' origin is the ``THIRD_PARTY_SCRIPTS_ORIGIN``
setting, which the lesson sets on the served shop to its slow local script host
(``perflab.thirdparty``).
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from shop.models import Product

__all__ = ["LOADING", "product_with_scripts"]

#: The ways the page can load its third-party scripts, in the order the lesson compares them.
LOADING = ("blocking", "defer", "async", "interaction", "after-load")


def product_with_scripts(request: HttpRequest, slug: str, loading: str) -> HttpResponse:
    """Render the product page with its third-party scripts loaded as ``loading`` says."""
    if loading not in LOADING:
        raise Http404(f"No loading mode {loading!r}; choose one of {', '.join(LOADING)}.")
    product = get_object_or_404(Product.objects.select_related("category"), slug=slug)
    origin = getattr(settings, "THIRD_PARTY_SCRIPTS_ORIGIN", "")
    response = render(request, "shop/lesson15/product.html",
                      {"product": product, "loading": loading, "origin": origin})
    response["Cache-Control"] = "no-store"
    return response
