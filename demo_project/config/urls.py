"""Route the shop at the site root, the admin under /admin/, and the debug toolbar when on."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("", include("shop.urls")),
]

# Keyed on INSTALLED_APPS, so settings built by the toolkit (without DEBUG_TOOLBAR) work too.
if "debug_toolbar" in settings.INSTALLED_APPS:
    from debug_toolbar.toolbar import debug_toolbar_urls

    urlpatterns += debug_toolbar_urls()
