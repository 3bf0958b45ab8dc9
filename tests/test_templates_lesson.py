"""Lesson 20's templates: the Jinja2 backend beside Django's, and every variant's same rows."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import perflab

PAGES = [
    "shop/lesson20/product_list.html",
    "shop/lesson20/product_list_include.html",
    "shop/lesson20/product_list_with.html",
]


@pytest.fixture(scope="module")
def products() -> list[Any]:
    """Return the product list's products as lesson 20 fetches them: one query, then a list."""
    perflab.setup(scale="tiny", quiet=True)
    from django.db.models import Count

    from shop.models import Product

    return list(
        Product.objects.select_related("category")
        .annotate(review_count=Count("reviews"))
        .order_by("id")[:100]
    )


def _rows(html: str) -> list[str]:
    found = re.findall(r"<tr>\s*<td>.*?</tr>", html, re.S)
    return [re.sub(r"\s*(<[^>]*>)\s*", r"\1", " ".join(row.split())) for row in found]


class _Card:
    """A product with a ``url`` attribute, as the lesson's cached_property wrapper gives it."""

    def __init__(self, product: Any) -> None:
        self.product = product
        self.url = product.get_absolute_url()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.product, name)


def test_pages_that_name_no_engine_still_get_django_templates(products: list[Any]) -> None:
    from django.template import engines, loader

    assert [engine.name for engine in engines.all()] == ["django", "jinja2"]
    template = loader.get_template("shop/product_list.html")
    assert type(template).__module__ == "django.template.backends.django"
    # The name exists for both engines: the first one listed wins.
    assert loader.get_template(PAGES[0]).backend.name == "django"
    assert loader.get_template(PAGES[0], using="jinja2").backend.name == "jinja2"


def test_jinja2_templates_get_url_and_static_from_the_environment(products: list[Any]) -> None:
    from django.template import engines

    template = engines["jinja2"].from_string("{{ url('shop:product-list') }} {{ static('a.css') }}")
    assert template.render({}) == "/ /static/a.css"


def test_every_variant_renders_the_same_rows_without_a_query(products: list[Any]) -> None:
    from django.template import engines

    django_engine, jinja = engines["django"], engines["jinja2"]
    with CaptureQueriesContext(connection) as queries:
        expected = _rows(django_engine.get_template(PAGES[0]).render({"products": products}))
        pages = [django_engine.get_template(name).render({"products": products})
                 for name in PAGES[1:]]
        pages.append(django_engine.get_template("shop/lesson20/product_list_url.html")
                     .render({"products": [_Card(p) for p in products]}))
        pages.append(jinja.get_template(PAGES[0]).render({"products": products}))
    assert len(queries) == 0
    assert len(expected) == len(products) > 0
    assert 'href="/products/' in expected[0] and "reviews</a>" in expected[0]
    for html in pages:
        assert _rows(html) == expected


def test_rows_differ_when_a_variant_changes_a_cell(products: list[Any]) -> None:
    """The comparison the lesson relies on can fail: a changed cell is a different row."""
    from django.template import engines

    html = engines["django"].get_template(PAGES[0]).render({"products": products})
    assert _rows(html.replace("#buy", "#basket", 1)) != _rows(html)
