"""Decide who sees django-debug-toolbar: a logged-in superuser, and only with DEBUG."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

__all__ = ["show_toolbar"]


def show_toolbar(request: HttpRequest) -> bool:
    """Return True for an active superuser's request from INTERNAL_IPS while DEBUG is on.

    The toolbar's default trusts INTERNAL_IPS alone, but on a shared host every local user can
    reach 127.0.0.1, and the History and Request panels would show them the learner's session
    cookie. The same callback gates the toolbar's own /__debug__/ views (404 otherwise).
    """
    if not settings.DEBUG or request.META.get("REMOTE_ADDR") not in settings.INTERNAL_IPS:
        return False
    # No user means DebugToolbarMiddleware runs before AuthenticationMiddleware: stay hidden.
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_superuser)
