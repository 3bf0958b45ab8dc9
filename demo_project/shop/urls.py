"""Route the shop's pages, its JSON API, delivery quotes, payment webhooks and health check."""

from __future__ import annotations

from django.urls import path

from shop import api, views, webhooks

app_name = "shop"

urlpatterns = [
    path("", views.ProductListView.as_view(), name="product-list"),
    path("products/<slug:slug>/", views.ProductDetailView.as_view(), name="product-detail"),
    path("api/reviews/", api.ReviewListAPIView.as_view(), name="api-reviews"),
    path("delivery-quote/", views.delivery_quote, name="delivery-quote"),
    path("delivery-quote/async/", views.delivery_quote_async, name="delivery-quote-async"),
    path("webhooks/paid/<int:order_id>/", webhooks.order_paid, name="order-paid"),
    path("webhooks/paid/<int:order_id>/queued/", webhooks.order_paid_queued,
         name="order-paid-queued"),
    path("healthz", views.healthz, name="healthz"),
]
