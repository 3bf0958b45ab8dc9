"""Route the shop at the site root, the admin under /admin/, and the debug toolbar when on.

With ``SERVE_STATIC_WITH_DJANGO`` on, Django's own file view serves ``STATIC_ROOT`` under
``STATIC_URL`` (lesson 13 measures it against WhiteNoise and a caching proxy): fine for
development, and Django's documentation says not to use it in production.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from django.views.static import serve

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("", include("shop.urls")),
]

if settings.SERVE_STATIC_WITH_DJANGO:
    prefix = settings.STATIC_URL.lstrip("/")
    urlpatterns.insert(0, re_path(rf"^{prefix}(?P<path>.*)$", serve,
                                  {"document_root": settings.STATIC_ROOT}))

# Keyed on INSTALLED_APPS, so settings built by the toolkit (without DEBUG_TOOLBAR) work too.
if "debug_toolbar" in settings.INSTALLED_APPS:
    from debug_toolbar.toolbar import debug_toolbar_urls

    urlpatterns += debug_toolbar_urls()
