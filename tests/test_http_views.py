"""Test lesson 21's views: conditional GETs that skip the page, a page that writes the session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings

if TYPE_CHECKING:
    from shop.models import Product


@pytest.fixture
def client(lab: object) -> Iterator[Client]:
    """Yield a test client whose host Django accepts whatever DEBUG is."""
    with override_settings(ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"]):
        yield Client()


@pytest.fixture
def product(lab: object) -> Iterator[Product]:
    """Yield the first seeded product; whatever a test changes is rolled back after it."""
    from shop.models import Product

    with transaction.atomic():
        yield Product.objects.order_by("id").first()
        transaction.set_rollback(True)


def test_product_page_runs_three_queries_and_sends_no_validator(
    client: Client, product: Product
) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/http/products/{product.slug}/")
    assert response.status_code == 200
    assert product.name in response.content.decode()
    assert len(queries) == 3
    assert "ETag" not in response and "Last-Modified" not in response


def test_etag_revisit_is_a_304_in_one_query(client: Client, product: Product) -> None:
    path = f"/http/products/{product.slug}/etag/"
    tag = client.get(path)["ETag"]
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, headers={"If-None-Match": tag})
    assert response.status_code == 304
    assert response.content == b""
    assert len(queries) == 1


def test_etag_changes_when_a_review_moves_the_counters(client: Client, product: Product) -> None:
    from shop.models import Product

    path = f"/http/products/{product.slug}/etag/"
    tag = client.get(path)["ETag"]
    Product.objects.filter(pk=product.pk).update(num_reviews=F("num_reviews") + 1)
    assert client.get(path, headers={"If-None-Match": tag}).status_code == 200


def test_last_modified_misses_a_price_change(client: Client, product: Product) -> None:
    from shop.models import Product

    path = f"/http/products/{product.slug}/last-modified/"
    since = client.get(path)["Last-Modified"]
    Product.objects.filter(pk=product.pk).update(price=F("price") + 1)
    assert client.get(path, headers={"If-Modified-Since": since}).status_code == 304


@pytest.mark.parametrize("engine", ["db", "signed_cookies"])
def test_recently_viewed_keeps_the_newest_ten_first(client: Client, engine: str) -> None:
    with override_settings(SESSION_ENGINE=f"django.contrib.sessions.backends.{engine}"):
        for pk in range(1, 13):
            response = client.get(f"/http/recently-viewed/{pk}/")
        again = client.get("/http/recently-viewed/5/")
    assert response.json()["recently_viewed"] == list(range(12, 2, -1))
    assert again.json()["recently_viewed"] == [5, 12, 11, 10, 9, 8, 7, 6, 4, 3]
