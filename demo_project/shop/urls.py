"""Route the shop's pages, its JSON API, delivery quotes, payment webhooks and health check."""

from __future__ import annotations

from django.urls import path

from shop import (
    api,
    async_views,
    capstone_views,
    connection_views,
    framework_views,
    http_views,
    ninja_api,
    thirdparty_views,
    views,
    webhooks,
)

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
    path("price/<int:product_id>/", connection_views.product_price, name="product-price"),
    path("healthz", views.healthz, name="healthz"),
    # Lesson 21: the product page with conditional GETs, and a page that writes the session.
    path("http/products/<slug:slug>/", http_views.product_page, name="http-product"),
    path("http/products/<slug:slug>/etag/", http_views.product_page_etag,
         name="http-product-etag"),
    path("http/products/<slug:slug>/last-modified/", http_views.product_page_last_modified,
         name="http-product-last-modified"),
    path("http/recently-viewed/<int:pk>/", http_views.recently_viewed,
         name="http-recently-viewed"),
    # Lesson 22: one product page with three carriers' quotes, sync, async, async gathered.
    path("products/<slug:slug>/quotes/", async_views.shipping_quotes, name="shipping-quotes"),
    path("products/<slug:slug>/quotes/async/", async_views.shipping_quotes_async,
         name="shipping-quotes-async"),
    path("products/<slug:slug>/quotes/gather/", async_views.shipping_quotes_gather,
         name="shipping-quotes-gather"),
    path("products/<slug:slug>/quotes/blocking/", async_views.shipping_quotes_blocking,
         name="shipping-quotes-blocking"),
    # Lesson 15: the product page with third-party scripts loaded five ways.
    path("products/<slug:slug>/scripts/<str:loading>/", thirdparty_views.product_with_scripts,
         name="product-with-scripts"),
    # Lesson 18: one JSON endpoint in DRF, Django Ninja and an async view (FastAPI: its own app).
    path("lesson18/drf/categories/<int:category_id>/top-products/",
         framework_views.TopProductsAPIView.as_view(), name="lesson18-drf"),
    path("lesson18/ninja/", ninja_api.api.urls),
    path("lesson18/async/categories/<int:category_id>/top-products/",
         framework_views.top_products_async, name="lesson18-async"),
    # Lesson 25: the product API at each step from naive to fastest, and the ceiling.
    path("capstone/naive/products/", capstone_views.NaiveProducts.as_view(),
         name="capstone-naive"),
    path("capstone/queries/products/", capstone_views.QueriedProducts.as_view(),
         name="capstone-queries"),
    path("capstone/keyset/products/", capstone_views.KeysetProducts.as_view(),
         name="capstone-keyset"),
    path("capstone/plain/products/", capstone_views.plain_products, name="capstone-plain"),
    path("capstone/cached/products/", capstone_views.cached_products, name="capstone-cached"),
    path("capstone/bytes/", capstone_views.precomputed_bytes, name="capstone-bytes"),
]
