"""Seeding: same scale, same rows; the counts each scale promises; the bulk path's safety net."""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from perflab import bulk, draws
from perflab import seed as seeding
from perflab.errors import UnknownChoice


def _digest(tables: list[seeding.TableRows]) -> str:
    digest = hashlib.sha256()
    for table in tables:
        for row in table.rows():
            digest.update(repr(row).encode())
    return digest.hexdigest()


def test_same_seed_generates_identical_rows() -> None:
    tiny = seeding.get_scale("tiny")
    assert _digest(seeding.generate(tiny, seed=7)) == _digest(seeding.generate(tiny, seed=7))


def test_another_seed_generates_other_rows() -> None:
    tiny = seeding.get_scale("tiny")
    assert _digest(seeding.generate(tiny, seed=7)) != _digest(seeding.generate(tiny, seed=8))


def test_declared_counts_match_generated_rows() -> None:
    for table in seeding.generate(seeding.get_scale("tiny")):
        assert sum(1 for _ in table.rows()) == table.count, table.table


def test_rows_match_their_columns() -> None:
    for table in seeding.generate(seeding.get_scale("tiny")):
        assert all(len(row) == len(table.columns) for row in table.rows()), table.table


def test_unknown_scale_names_the_valid_ones() -> None:
    with pytest.raises(UnknownChoice, match=r"Unknown scale 'huge'.*'tiny', 'small'"):
        seeding.get_scale("huge")


def test_scales_grow_from_tiny_to_large() -> None:
    sizes = [seeding.SCALES[n].approximate_rows for n in ("tiny", "small", "default", "large")]
    assert sizes == sorted(sizes)


def test_seeded_lab_has_the_scale_row_counts(lab) -> None:
    counts = lab.counts()
    tiny = seeding.get_scale("tiny")
    assert counts["shop_product"] == tiny.products
    assert counts["shop_review"] == tiny.reviews
    assert counts["auth_user"] == tiny.customers
    assert counts["shop_order"] == tiny.orders


def test_orm_reads_seeded_values_with_their_python_types(lab) -> None:
    from shop.models import Product, Review

    review = Review.objects.order_by("id").first()
    assert isinstance(review.created, datetime) and review.created.tzinfo is not None
    assert isinstance(Product.objects.order_by("id").first().price, Decimal)
    assert 1 <= review.rating <= 5


def test_seeded_admin_has_no_password_anyone_could_know(lab) -> None:
    # `make site` gives each learner's copy a random one; a shared host must not have admin/admin.
    from django.contrib.auth import authenticate
    from django.contrib.auth.models import User

    admin = User.objects.get(username="admin")
    assert admin.is_superuser and not admin.has_usable_password()
    assert authenticate(username="admin", password="admin") is None


def test_bulk_load_refuses_rows_that_break_foreign_keys(lab) -> None:
    from django.db import connection

    broken = seeding.TableRows(
        "shop_review",
        ("id", "product_id", "author_id", "rating", "title", "body", "created"),
        1,
        lambda: iter([[(999_999, 424_242, 1, 5, "t", "b", "2024-01-01 00:00:00")]]),
    )
    for tables in ((), ("shop_review",)):  # every table, or the loaded ones (indexes deferred)
        with pytest.raises(RuntimeError, match="break foreign keys"), \
                bulk.bulk_load(connection, tables):
            bulk.write_rows(connection, broken)
    assert not lab.counts()["shop_review"] > seeding.get_scale("tiny").reviews  # rolled back


def test_progress_bar_shows_when_asked(lab, capsys: pytest.CaptureFixture[str]) -> None:
    from django.db import connection, transaction

    with transaction.atomic():
        for table in ("shop_orderline", "shop_order", "shop_review", "shop_product_tags",
                      "shop_product", "shop_tag", "shop_category"):
            connection.cursor().execute(f"DELETE FROM {table}")
        connection.cursor().execute("DELETE FROM auth_user")
        bulk.seed_database(connection, seeding.get_scale("tiny"), progress=True)
        transaction.set_rollback(True)
    assert "Seeding tiny" in capsys.readouterr().err


def test_seed_fills_each_products_review_counters(lab) -> None:
    from django.db.models import Count, Sum

    from shop.models import Product

    counted = Product.objects.annotate(n=Count("reviews"), total=Sum("reviews__rating"))
    assert all(p.num_reviews == p.n and p.rating_sum == (p.total or 0) for p in counted)
    assert any(p.num_reviews > 0 for p in counted)


def test_deferred_indexes_are_built_again(lab) -> None:
    from django.db import connection, transaction

    def indexes() -> list[tuple[str, str]]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                           "AND tbl_name = 'shop_review' ORDER BY name")
            return cursor.fetchall()

    before = indexes()
    with transaction.atomic():
        with bulk.bulk_load(connection, ["shop_review"]):
            assert not [sql for _, sql in indexes() if sql]  # dropped while loading
        assert indexes() == before
        transaction.set_rollback(True)


# --- The bulk replay is the plain random.Random calls, value for value -------------------------
# What follows is the generator as it was written first, one random.Random call at a time: the
# definition of the data. seed.generate must give exactly these rows, for every vendor.


def _reference(scale: seeding.Scale, seed: int, vendor: str) -> dict[str, list[tuple[Any, ...]]]:
    s, epoch = scale, seeding.EPOCH

    def stamp(rng: random.Random) -> Any:
        moment = epoch + timedelta(seconds=rng.randrange(seeding.SPAN_SECONDS))
        if vendor == "python":
            return moment
        return moment.strftime("%Y-%m-%d %H:%M:%S" + ("+00" if vendor == "postgresql" else ""))

    def price(rng: random.Random) -> str:
        return str(Decimal(rng.randrange(199, 49_999)) / 100)

    def sentence(rng: random.Random, low: int, high: int) -> str:
        return " ".join(rng.choices(seeding._WORDS, k=rng.randint(low, high))).capitalize()

    rng = random.Random(f"{seed}-products")
    products = []
    for i in range(1, s.products + 1):
        name = f"{rng.choice(seeding._ADJECTIVES)} {rng.choice(seeding._NOUNS)} {i}"
        products.append((i, rng.randint(1, s.categories), name, name.lower().replace(" ", "-"),
                         sentence(rng, 8, 30), price(rng), rng.randrange(0, 500), stamp(rng)))
    rng = random.Random(f"{seed}-customers")
    users = []
    for i in range(1, s.customers + 1):
        first, last = rng.choice(seeding._FIRST), rng.choice(seeding._LAST)
        username = f"{first.lower()}.{last.lower()}{i}"
        users.append((i, "!", None, False, username, first, last, f"{username}@example.com",
                      False, True, stamp(rng)))
    rng = random.Random(f"{seed}-reviews")
    reviews = [(i, rng.randint(1, s.products), rng.randint(1, s.customers),
                rng.choices((1, 2, 3, 4, 5), seeding._RATING_WEIGHTS)[0], sentence(rng, 2, 6),
                sentence(rng, 10, 40), stamp(rng)) for i in range(1, s.reviews + 1)]
    rng = random.Random(f"{seed}-orders")
    line_counts = [rng.randint(1, s.max_lines_per_order) for _ in range(s.orders)]
    rng = random.Random(f"{seed}-order-rows")
    orders = [(i, rng.randint(1, s.customers), rng.choice(seeding._STATUSES), stamp(rng))
              for i in range(1, s.orders + 1)]
    rng = random.Random(f"{seed}-order-lines")
    lines = [(0, order_id, rng.randint(1, s.products), rng.randint(1, 5), price(rng))
             for order_id, n in enumerate(line_counts, start=1) for _ in range(n)]
    return {
        "shop_product": products, "auth_user": users, "shop_review": reviews,
        "shop_order": orders,
        "shop_orderline": [(i, *line[1:]) for i, line in enumerate(lines, start=1)],
    }


@pytest.mark.parametrize("vendor", ["sqlite", "postgresql", "python"])
@pytest.mark.parametrize("scale", ["tiny", "small"])
def test_bulk_generation_matches_plain_random_calls(scale: str, vendor: str) -> None:
    size = seeding.get_scale(scale)
    expected = _reference(size, 42, vendor)
    for table in seeding.generate(size, vendor=vendor):
        if table.table in expected:
            rows = list(table.rows())
            assert rows == expected[table.table], table.table
            assert [type(v) for v in rows[-1]] == [type(v) for v in expected[table.table][-1]]


@pytest.mark.parametrize("block", [64, 1_000])
def test_draws_across_block_boundaries_match_plain_calls(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rows cut by a block's end, and blocks shorter than a row (64 words), resume exactly.
    monkeypatch.setattr(draws, "_BLOCK_WORDS", block)
    plan = (draws.Below(17), draws.FLOAT, draws.Words(10, 40), draws.Below(70_000))
    got = []
    for batch in draws.draw("boundaries", plan, 500):
        below, floats, (counts, words), wide = batch.values
        ends = counts.cumsum()
        got += [(b, f, words[e - c:e].tolist(), w) for b, f, c, e, w in zip(
            below.tolist(), floats.tolist(), counts, ends, wide.tolist(), strict=True)]
    rng = random.Random("boundaries")
    expected = []
    for _ in range(500):
        below, real = rng.randrange(17), rng.random()
        words = [rng.random() for _ in range(rng.randint(10, 40))]
        expected.append((below, real, words, rng.randrange(70_000)))
    assert got == expected
