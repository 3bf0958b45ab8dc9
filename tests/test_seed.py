"""Seeding: same scale, same rows; the counts each scale promises; the bulk path's safety net."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal

import pytest

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
        lambda: iter([(999_999, 424_242, 1, 5, "t", "b", "2024-01-01 00:00:00")]),
    )
    with pytest.raises(RuntimeError, match="break foreign keys"), seeding.bulk_load(connection):
        seeding.write_rows(connection, broken)
    assert not lab.counts()["shop_review"] > seeding.get_scale("tiny").reviews  # rolled back


def test_progress_bar_shows_when_asked(lab, capsys: pytest.CaptureFixture[str]) -> None:
    from django.db import connection, transaction

    with transaction.atomic():
        for table in ("shop_orderline", "shop_order", "shop_review", "shop_product_tags",
                      "shop_product", "shop_tag", "shop_category"):
            connection.cursor().execute(f"DELETE FROM {table}")
        connection.cursor().execute("DELETE FROM auth_user")
        seeding.seed_database(connection, seeding.get_scale("tiny"), progress=True)
        transaction.set_rollback(True)
    assert "Seeding tiny" in capsys.readouterr().err


def test_seed_fills_each_products_review_counters(lab) -> None:
    from django.db.models import Count, Sum

    from shop.models import Product

    counted = Product.objects.annotate(n=Count("reviews"), total=Sum("reviews__rating"))
    assert all(p.num_reviews == p.n and p.rating_sum == (p.total or 0) for p in counted)
    assert any(p.num_reviews > 0 for p in counted)
