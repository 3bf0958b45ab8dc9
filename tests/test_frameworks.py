"""Lesson 18's toolkit and shop code: five ways to one query, an injection, four endpoints."""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest

import perflab
from perflab import frameworks
from perflab.requires import requirement_met

# Small enough that the tiny scale has products to rank.
MIN, TOP = 3, 2


def first_category() -> int:
    from shop.models import Category

    return Category.objects.order_by("id").values_list("id", flat=True).first()


@pytest.fixture
def lab() -> Any:
    return perflab.setup(scale="tiny", quiet=True)


def test_every_way_to_the_top_products_returns_the_same_rows(lab) -> None:
    from shop import other_orms

    engine, category = other_orms.sqlalchemy_engine(), first_category()
    expected = other_orms.top_products_django(category, MIN, TOP)
    assert len(expected) == TOP
    assert other_orms.top_products_raw(category, MIN, TOP) == expected
    assert other_orms.top_products_core(engine, category, MIN, TOP) == expected
    assert other_orms.top_products_sqlalchemy_orm(engine, category, MIN, TOP) == expected
    db = other_orms.pony_database()
    assert other_orms.top_products_pony(db, category, MIN, TOP) == expected


def test_statements_are_heard_from_django_sqlalchemy_and_pony(lab) -> None:
    from shop import other_orms

    engine, category = other_orms.sqlalchemy_engine(), first_category()
    db = other_orms.pony_database()
    sent = lab.statements(lambda: other_orms.top_products_django(category))
    assert [s.library for s in sent] == ["Django"]
    sent = lab.statements(lambda: other_orms.top_products_core(engine, category), engine=engine)
    assert [s.library for s in sent] == ["SQLAlchemy"]
    sent = lab.statements(lambda: other_orms.top_products_pony(db, category, MIN, TOP))
    assert [s.library for s in sent] == ["Pony", "Pony"]  # the aggregate, then the names
    assert "AVG" in sent[0].sql


def test_statements_leave_pony_printing_nothing(lab, capsys: pytest.CaptureFixture[str]) -> None:
    from shop import other_orms

    db = other_orms.pony_database()
    lab.statements(lambda: other_orms.top_products_pony(db, first_category(), MIN, TOP))
    assert capsys.readouterr().out == ""


def test_a_formatted_search_leaks_users_and_a_parameterised_one_does_not(lab) -> None:
    from django.contrib.auth.models import User

    from shop import other_orms

    attack = "zzz' UNION SELECT id, username, password FROM auth_user --"
    leaked = other_orms.search_products_formatted(attack)
    assert {row[1] for row in leaked} == set(User.objects.values_list("username", flat=True))
    assert other_orms.search_products_with_params(attack) == []


def test_the_four_endpoints_answer_the_same_json(lab) -> None:
    from django.test import AsyncClient

    from shop import fastapi_app, other_orms

    category = first_category()
    expected = other_orms.top_products_django(category)
    endpoint = f"categories/{category}/top-products/"
    assert lab.get(f"/lesson18/drf/{endpoint}").json() == expected
    assert lab.get(f"/lesson18/ninja/{endpoint}").json() == expected
    response = lab.run_async(AsyncClient().get(f"/lesson18/async/{endpoint}"))
    assert response.json() == expected
    assert lab.asgi_get(fastapi_app.app, f"/{endpoint}").json() == expected


def test_time_split_times_the_inner_call_within_the_same_calls() -> None:
    class Inner:
        @staticmethod
        def work() -> None:
            time.sleep(0.01)

    def outer() -> None:
        Inner.work()
        time.sleep(0.005)

    original = Inner.work
    split = frameworks.Frameworks.time_split("outer", outer, inside=[(Inner, "work")],
                                             repeat=3, warmup=0)
    assert 9 <= split.inside_ms < split.total_ms
    assert split.outside_ms >= 4
    assert Inner.work is original  # put back


def test_time_split_times_async_functions_too() -> None:
    import asyncio

    class Inner:
        @staticmethod
        async def work() -> None:
            await asyncio.sleep(0.01)

    split = frameworks.Frameworks.time_split(
        "outer", lambda: asyncio.run(Inner.work()), inside=[(Inner, "work")], repeat=2, warmup=0
    )
    assert split.inside_ms >= 9


def test_pony_is_a_tool_requires_knows() -> None:
    assert requirement_met("pony") == (True, "")


def test_pony_status_says_what_is_missing_when_pony_is_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pony", None)  # import pony now raises ImportError
    ok, why = frameworks.pony_status()
    assert not ok
    assert "not installed" in why and "Install:" in why


def test_a_missing_pony_skips_the_cell_for_a_learner_and_fails_in_strict_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from perflab.errors import ServiceUnavailable

    monkeypatch.setitem(sys.modules, "pony", None)
    monkeypatch.delenv("PERFLAB_STRICT", raising=False)
    ok, why = requirement_met("pony")
    assert not ok and why.startswith("Skipped: this cell needs pony.")
    monkeypatch.setenv("PERFLAB_STRICT", "1")
    with pytest.raises(ServiceUnavailable):
        requirement_met("pony")
