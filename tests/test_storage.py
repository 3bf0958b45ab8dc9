"""Disk space per table and index: the cost side of every index lesson."""

from __future__ import annotations

import pytest

import perflab
from perflab.errors import PerflabError
from perflab.storage import TableStorage


def _index_and_back(lab, table: str) -> tuple[TableStorage, TableStorage]:
    from django.db import connection

    before = lab.storage(table)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE INDEX perflab_test_title ON {table} (title)")
    try:
        after = lab.storage(table)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX perflab_test_title")
    return before, after


def test_storage_lists_each_index_of_a_table(lab) -> None:
    storage = lab.storage("shop_review")
    assert storage.table_bytes > 0
    # The foreign keys' indexes, which Django names with a hash suffix.
    assert {name.rsplit("_", 1)[0] for name in storage.index_bytes} >= {
        "shop_review_product_id", "shop_review_author_id"}
    assert storage.total_bytes == storage.table_bytes + storage.indexes_bytes
    assert "shop_review: rows" in str(storage) and "<table" in storage._repr_html_()


def test_a_new_index_takes_space_and_the_rows_do_not_move(lab) -> None:
    before, after = _index_and_back(lab, "shop_review")
    assert after.index_bytes["perflab_test_title"] > 0
    assert after.table_bytes == before.table_bytes
    assert after.indexes_bytes > before.indexes_bytes


def test_database_size_grows_with_an_index(lab) -> None:
    from django.db import connection

    before = lab.database_size()
    with connection.cursor() as cursor:
        cursor.execute("CREATE INDEX perflab_test_body ON shop_review (body)")
    try:
        assert lab.database_size() > before
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX perflab_test_body")


def test_storage_of_an_unknown_table_is_a_clear_error(lab) -> None:
    with pytest.raises(PerflabError, match="No table named 'shop_nope'"):
        lab.storage("shop_nope")


@pytest.mark.services
def test_postgres_storage_counts_the_same_indexes(lab) -> None:
    pg = perflab.setup(database="postgres", scale="tiny", quiet=True)
    try:
        before, after = _index_and_back(pg, "shop_review")
        assert after.index_bytes["perflab_test_title"] > 0
        assert "shop_review_pkey" in before.index_bytes
        assert pg.database_size() > after.total_bytes
        with pytest.raises(PerflabError, match="No table named"):
            pg.storage("shop_nope")
    finally:
        perflab.setup(scale="tiny", quiet=True)


def test_add_index_and_drop_index_change_the_table_as_migrations_would(lab) -> None:
    from django.db import models

    from shop.models import Review

    index = models.Index(fields=["rating", "created"], name="perflab_test_rating_created")
    lab.add_index(Review, index)
    try:
        assert "perflab_test_rating_created" in lab.storage("shop_review").index_bytes
    finally:
        lab.drop_index(Review, index)
    assert "perflab_test_rating_created" not in lab.storage("shop_review").index_bytes


def test_interleaved_compare_puts_each_measurement_s_indexes_back(lab) -> None:
    import dataclasses
    import itertools

    from django.db import models

    from shop.models import Review

    index = models.Index(fields=["title"], name="perflab_test_title_idx")
    seen: list[tuple[str, bool]] = []

    def probe(label: str):
        def run() -> None:
            seen.append((label, "perflab_test_title_idx" in lab.storage("shop_review").index_bytes))
        return run

    before = lab.measure("before", probe("before"), repeat=3)
    lab.add_index(Review, index)
    try:
        after = lab.measure("after", probe("after"), repeat=3)
        seen.clear()
        lab.compare(before, after, chart=False, interleave=True)
        # Every call of "before" saw no index, every call of "after" saw it, round by round.
        assert sorted(set(seen)) == [("after", True), ("before", False)]
        switches = sum(1 for a, b in itertools.pairwise(seen) if a[0] != b[0])
        # One switch per round (ab|ba|ab...); cheap candidates get more rounds than their three.
        rounds = len(before.times_ms)
        assert rounds == len(after.times_ms) >= 3 and switches == rounds
        assert before.interleaved and after.interleaved
        # ... and the lesson's own state is back: the index it added is still there.
        assert "perflab_test_title_idx" in lab.storage("shop_review").index_bytes

        moved = dataclasses.replace(before.schema, database="elsewhere")
        elsewhere = dataclasses.replace(before, schema=moved)
        with pytest.raises(PerflabError, match=r"inside the same `with lab\.using"):
            lab.compare(elsewhere, after, chart=False, interleave=True)
    finally:
        lab.drop_index(Review, index)
