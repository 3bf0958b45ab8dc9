"""Give the shop's Jinja2 templates what its Django templates get from tags: static and url.

Django's Jinja2 backend builds its environment with this function (settings.TEMPLATES,
"environment"), as Django's documentation shows: Jinja2 has no template tags, so helpers are
plain functions in the environment's globals.
"""

from __future__ import annotations

from typing import Any

from django.templatetags.static import static
from django.urls import reverse
from jinja2 import Environment

__all__ = ["environment"]


def environment(**options: Any) -> Environment:
    """Return a Jinja2 environment with ``static()`` and ``url()``, the tags Jinja2 lacks."""
    env = Environment(**options)
    env.globals.update({"static": static, "url": reverse})
    return env
