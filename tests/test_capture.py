"""What a measurement counts and how it shows the SQL: Django's own rules, at any size."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from perflab.measure import measure


def _asserted_count(connection: Any, func: Callable[[], Any]) -> int:
    """Return how many queries Django's assertNumQueries would count for ``func``."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as context:
        func()
    return len(context.captured_queries)


def _transactions(connection: Any) -> dict[str, Callable[[], Any]]:
    from django.db import transaction

    from shop.models import Product

    def commit() -> None:
        with transaction.atomic():
            Product.objects.filter(pk=1).update(stock=5)
            Product.objects.filter(pk=2).update(stock=6)

    def savepoint() -> None:
        with transaction.atomic():
            Product.objects.filter(pk=1).update(stock=5)
            with transaction.atomic():
                Product.objects.filter(pk=2).update(stock=6)

    def rollback() -> None:
        with transaction.atomic():
            Product.objects.filter(pk=1).update(stock=5)
            transaction.set_rollback(True)

    return {"commit": commit, "savepoint": savepoint, "rollback": rollback,
            "no transaction": lambda: list(Product.objects.all()[:3])}


@pytest.mark.parametrize("case", ["commit", "savepoint", "rollback", "no transaction"])
def test_a_measurement_counts_what_assert_num_queries_counts(lab, case: str) -> None:
    from django.db import connection

    func = _transactions(connection)[case]

    m = measure(case, func, repeat=1, warmup=0)

    assert m.query_count == _asserted_count(connection, func)
    if case in ("commit", "rollback"):
        assert m.queries[-1].sql == {"commit": "COMMIT", "rollback": "ROLLBACK"}[case]


@pytest.mark.services
@pytest.mark.parametrize("case", ["commit", "savepoint", "rollback"])
def test_on_postgresql_too_the_count_is_assert_num_queries(case: str) -> None:
    from perflab import services, setup

    if not services.service_available("postgres") and not services.is_strict():
        pytest.skip("postgres is not installed")
    setup(database="postgres", scale="tiny", quiet=True)
    try:
        from django.db import connection

        func = _transactions(connection)[case]
        m = measure(case, func, repeat=1, warmup=0)
        assert m.query_count == _asserted_count(connection, func)
    finally:
        setup(scale="tiny", quiet=True)


def test_ten_thousand_and_one_queries_are_all_recorded_without_a_warning(
    lab, capsys: pytest.CaptureFixture[str]
) -> None:
    from shop.models import Product

    pks = [1 + i % 40 for i in range(10_001)]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Django's "Limit for query logging exceeded" included
        m = measure("one by one", lambda: [Product.objects.get(pk=pk) for pk in pks],
                    repeat=1, warmup=0)

    assert m.query_count == 10_001
    assert m.queries[-1].rendered.endswith(f'"shop_product"."id" = {pks[-1]} LIMIT 21')
    assert len(m.similar_groups) == 1 and m.similar_groups[0].count == 10_001
    assert capsys.readouterr().err == ""


def test_sql_is_rendered_as_django_logs_it_even_when_the_code_commits(lab) -> None:
    from django.db import transaction

    from shop.models import Product

    def reprice() -> None:
        with transaction.atomic():
            Product.objects.filter(pk=1).update(price=Decimal("310.25"))
            transaction.set_rollback(True)

    m = measure("reprice", reprice, repeat=1, warmup=0)

    update = next(q for q in m.queries if q.sql.startswith("UPDATE"))
    assert "Decimal(" not in update.rendered and "-- params" not in update.rendered
    assert "310.25" in update.rendered
