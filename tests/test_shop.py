"""Test the demo shop: its pages, its API, its settings, and the naive query counts lessons fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings

if TYPE_CHECKING:
    # Model modules import only after django.setup(), which the django_db fixture runs.
    from django.contrib.auth.models import User

    from shop.models import Product, Review

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_DIR = REPO_ROOT / "demo_project"
MANAGE_PY = PROJECT_DIR / "manage.py"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


# --- Database fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def django_db(lab: object) -> None:
    """Use the toolkit's tiny lab: Django configured, database migrated and seeded."""


@dataclass
class ShopRows:
    """Hold the rows a test's shop starts with."""

    alice: User
    bob: User
    products: dict[str, Product] = field(default_factory=dict)


def empty_shop_tables() -> None:
    """Delete every shop row, so counts don't depend on what the configured database holds."""
    from shop.models import Category, Order, OrderLine, Product, Review, Tag

    tables = [
        OrderLine._meta.db_table,
        Order._meta.db_table,
        Review._meta.db_table,
        Product.tags.through._meta.db_table,
        Product._meta.db_table,
        Tag._meta.db_table,
        Category._meta.db_table,
    ]
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")


def add_product(name: str, *, category: str = "Books", minute: int = 0) -> Product:
    """Create a product (and its category when new) with a slug made from the name."""
    from shop.models import Category, Product

    slug = name.lower().replace(" ", "-")
    category_row, _ = Category.objects.get_or_create(
        name=category, defaults={"slug": category.lower()}
    )
    return Product.objects.create(
        category=category_row,
        name=name,
        slug=slug,
        price=Decimal("9.99"),
        stock=5,
        created=T0 + timedelta(minutes=minute),
    )


def add_review(product: Product, author: User, *, rating: int = 4, minute: int = 0) -> Review:
    """Create a review whose title names its product and author."""
    from shop.models import Review

    return Review.objects.create(
        product=product,
        author=author,
        rating=rating,
        title=f"{author.username} on {product.name}",
        body="Would buy again.",
        created=T0 + timedelta(minutes=minute),
    )


@pytest.fixture
def shop(django_db: None) -> Iterator[ShopRows]:
    """Yield a small shop built inside a transaction that is rolled back after the test."""
    from django.contrib.auth.models import User

    from shop.models import Tag

    with transaction.atomic():
        empty_shop_tables()
        rows = ShopRows(
            alice=User.objects.create(username="test-shop-alice"),
            bob=User.objects.create(username="test-shop-bob"),
        )
        dune = add_product("Dune", minute=1)
        emma = add_product("Emma", minute=2)
        chess = add_product("Chess Set", category="Games", minute=3)
        dune.tags.add(Tag.objects.create(name="classic"), Tag.objects.create(name="sci-fi"))
        add_review(dune, rows.alice, rating=5, minute=10)
        add_review(dune, rows.bob, rating=4, minute=11)
        add_review(emma, rows.alice, rating=3, minute=12)
        rows.products = {"dune": dune, "emma": emma, "chess": chess}
        yield rows
        transaction.set_rollback(True)


@pytest.fixture
def client(django_db: None) -> Iterator[Client]:
    """Yield a test client whose host Django accepts whatever DEBUG is."""
    with override_settings(ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"]):
        yield Client()


def count_queries(client: Client, url: str) -> int:
    """Return how many queries one GET of the url runs (asserting it succeeds)."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


# --- Pages -----------------------------------------------------------------------------------


def test_product_list_shows_each_product_with_category_and_review_count(
    client: Client, shop: ShopRows
) -> None:
    response = client.get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert '<a href="/products/dune/">Dune</a>' in html
    assert "<td>Games</td>" in html
    rows = [row for row in html.split("<tr>") if "/products/" in row]
    assert [row.count("<td>2</td>") for row in rows] == [1, 0, 0]  # Dune has 2 reviews


def test_product_list_runs_two_more_queries_for_each_product(
    client: Client, shop: ShopRows
) -> None:
    # The naive baseline the lessons fix: one query for the category and one COUNT for the
    # reviews, per product. If this fails, the view got faster and the lessons need updating.
    three = count_queries(client, "/")
    for number in range(4):
        add_product(f"Extra {number}", category=f"Extra {number}", minute=20 + number)
    seven = count_queries(client, "/")

    assert seven - three == 2 * 4


def test_product_list_shows_100_products_a_page(client: Client, shop: ShopRows) -> None:
    for number in range(98):
        add_product(f"Bulk {number}", minute=100 + number)

    first = client.get("/").content.decode()
    second = client.get("/?page=2").content.decode()

    assert first.count('<a href="/products/') == 100
    assert second.count('<a href="/products/') == 1
    assert "Page 2 of 2" in second


def test_product_detail_shows_tags_and_review_authors(client: Client, shop: ShopRows) -> None:
    response = client.get("/products/dune/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Dune</h1>" in html
    assert "<li>classic</li>" in html
    assert "<li>sci-fi</li>" in html
    assert "by test-shop-alice" in html
    assert "by test-shop-bob" in html
    assert html.index("by test-shop-bob") < html.index("by test-shop-alice")  # newest first


def test_product_detail_runs_one_more_query_for_each_review(client: Client, shop: ShopRows) -> None:
    # The naive baseline: each review.author.username loads its user on its own.
    dune = shop.products["dune"]
    two = count_queries(client, "/products/dune/")
    for minute in range(3):
        add_review(dune, shop.alice, minute=30 + minute)
    five = count_queries(client, "/products/dune/")

    assert five - two == 3


def test_product_detail_is_404_for_an_unknown_slug(client: Client, shop: ShopRows) -> None:
    assert client.get("/products/no-such-thing/").status_code == 404


def test_healthz_answers_ok(client: Client, django_db: None) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.content == b"ok"


# --- API -------------------------------------------------------------------------------------


def test_reviews_api_returns_newest_first_with_author_username_and_product_name(
    client: Client, shop: ShopRows
) -> None:
    response = client.get("/api/reviews/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    reviews = json.loads(response.content)
    assert [(r["author"], r["product_name"], r["rating"]) for r in reviews] == [
        ("test-shop-alice", "Emma", 3),
        ("test-shop-bob", "Dune", 4),
        ("test-shop-alice", "Dune", 5),
    ]
    assert reviews[0]["product"] == shop.products["emma"].pk
    assert set(reviews[0]) == {
        "id",
        "product",
        "product_name",
        "author",
        "rating",
        "title",
        "body",
        "created",
    }


def test_reviews_api_filters_by_product(client: Client, shop: ShopRows) -> None:
    dune = shop.products["dune"]

    reviews = client.get(f"/api/reviews/?product={dune.pk}&format=json").json()

    assert len(reviews) == 2
    assert {review["product"] for review in reviews} == {dune.pk}


def test_reviews_api_rejects_a_product_that_is_not_a_number(client: Client, shop: ShopRows) -> None:
    response = client.get("/api/reviews/?product=dune&format=json")

    assert response.status_code == 400
    assert "product" in response.json()


def test_reviews_api_limit_returns_the_newest_reviews(client: Client, shop: ShopRows) -> None:
    reviews = client.get("/api/reviews/?limit=1&format=json").json()

    assert [review["product_name"] for review in reviews] == ["Emma"]


def test_reviews_api_caps_limit_at_1000(client: Client, shop: ShopRows) -> None:
    with CaptureQueriesContext(connection) as queries:
        client.get("/api/reviews/?limit=5000&format=json")

    assert "LIMIT 1000" in queries[0]["sql"]


def test_reviews_api_runs_two_more_queries_for_each_review(client: Client, shop: ShopRows) -> None:
    # The naive baseline: author and product are each loaded per review.
    three = count_queries(client, "/api/reviews/?format=json")
    for minute in range(2):
        add_review(shop.products["chess"], shop.bob, minute=40 + minute)
    five = count_queries(client, "/api/reviews/?format=json")

    assert five - three == 2 * 2


# --- Settings and management commands (fresh processes, clean environment) -------------------


def run_python(
    *args: str, env: Mapping[str, str], cwd: Path = REPO_ROOT
) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with only the given environment (plus PATH and the project)."""
    clean_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(PROJECT_DIR), **env}
    return subprocess.run(
        [sys.executable, *args],
        env=clean_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


PROBE_SETTINGS = (
    "import json; from config import settings as s; "
    "print(json.dumps({'debug': s.DEBUG, 'apps': s.INSTALLED_APPS, 'middleware': s.MIDDLEWARE,"
    " 'hosts': s.ALLOWED_HOSTS, 'cache': s.CACHES['default']['BACKEND'],"
    " 'secure_cookies': [s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE]}))"
)


def probe_settings(**env: str) -> dict[str, object]:
    """Return a few settings as config.settings computes them from this environment."""
    result = run_python("-c", PROBE_SETTINGS, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_settings_refuse_to_load_without_a_secret_key_when_debug_is_off() -> None:
    result = run_python("-c", "import config.settings", env={})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_settings_use_a_dev_secret_key_when_debug_is_on() -> None:
    probed = probe_settings(DJANGO_DEBUG="1")

    assert probed["debug"] is True
    assert probed["secure_cookies"] == [False, False]


def test_settings_are_safe_by_default_when_debug_is_off() -> None:
    probed = probe_settings(DJANGO_SECRET_KEY="k", DJANGO_ALLOWED_HOSTS="shop.example,api.example")

    assert probed["debug"] is False
    assert probed["hosts"] == ["shop.example", "api.example"]
    assert probed["secure_cookies"] == [True, True]
    assert probed["cache"] == "django.core.cache.backends.locmem.LocMemCache"


@pytest.mark.parametrize(
    ("env", "toolbar_on"),
    [
        ({"DJANGO_DEBUG": "1"}, True),
        ({"DJANGO_DEBUG": "1", "DJANGO_DEBUG_TOOLBAR": "0"}, False),
        ({"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "k"}, False),
    ],
    ids=["debug", "debug-toolbar-off", "no-debug"],
)
def test_debug_toolbar_is_installed_only_with_debug_and_not_switched_off(
    env: dict[str, str], toolbar_on: bool
) -> None:
    probed = probe_settings(**env)

    assert ("debug_toolbar" in probed["apps"]) is toolbar_on
    middleware = "debug_toolbar.middleware.DebugToolbarMiddleware"
    assert (middleware in probed["middleware"]) is toolbar_on
    assert len(probed["middleware"]) == 7 + toolbar_on


@pytest.mark.parametrize("debug", ["0", "1"])
def test_manage_py_check_finds_no_issues(debug: str, tmp_path: Path) -> None:
    env = {
        "DJANGO_DEBUG": debug,
        "DJANGO_SECRET_KEY": "test-only-secret-key-not-for-production-use-0123456789",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'check.sqlite3'}",
    }
    # Deprecated settings or APIs in the project itself would warn while loading; make that fatal
    # here, on whichever Django version runs the suite.
    strict = ("-W", "error::DeprecationWarning", "-W", "error::PendingDeprecationWarning")
    result = run_python(*strict, str(MANAGE_PY), "check", "--fail-level", "WARNING", env=env)

    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_check_has_no_secret_key_cookie_or_host_warnings(tmp_path: Path) -> None:
    env = {
        "DJANGO_SECRET_KEY": "x7Gq2vN9pLm4Rt8Wz1Ks6Hd3Jf5Bc0Ya-Ue7Io2Pn4Tq9Lr6Mx1Vb8Nz3Kw5Jh",
        "DJANGO_ALLOWED_HOSTS": "shop.example",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'check.sqlite3'}",
    }
    result = run_python(str(MANAGE_PY), "check", "--deploy", env=env)

    assert result.returncode == 0, result.stderr
    # HSTS and SSL redirect stay opt-in (security.W004, W008): the lessons serve plain HTTP.
    for warning in ["W009", "W012", "W016", "W018", "W019", "W020"]:
        assert f"security.{warning}" not in result.stderr


def test_migrations_match_the_models(tmp_path: Path) -> None:
    env = {
        "DJANGO_SECRET_KEY": "k",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'migrations.sqlite3'}",
    }
    result = run_python(str(MANAGE_PY), "makemigrations", "--check", "--dry-run", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
