"""Route the shop's pages, its JSON API and the health check."""

from __future__ import annotations

from django.urls import path

from shop import api, views

app_name = "shop"

urlpatterns = [
    path("", views.ProductListView.as_view(), name="product-list"),
    path("products/<slug:slug>/", views.ProductDetailView.as_view(), name="product-detail"),
    path("api/reviews/", api.ReviewListAPIView.as_view(), name="api-reviews"),
    path("healthz", views.healthz, name="healthz"),
]
