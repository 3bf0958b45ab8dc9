"""Tests for perflab.exercises: every check prints feedback and returns a bool, never raises."""

from __future__ import annotations

from typing import Any

import pytest

from perflab.exercises import NOT_ATTEMPTED, check, check_equal, check_queries

TABLE = "perflab_exercises_t"


@pytest.fixture(scope="module")
def connection(scratch_table) -> Any:
    """Return the lab's connection, holding a scratch table for these tests."""
    return scratch_table(
        TABLE, "id INTEGER PRIMARY KEY, name TEXT", [(i, f"row {i}") for i in (1, 2, 3)]
    )


def one_by_one(connection: Any) -> list[str]:
    names = []
    for pk in (1, 2, 3):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT name FROM {TABLE} WHERE id = %s", [pk])
            names.append(cursor.fetchone()[0])
    return names


def all_at_once(connection: Any) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT name FROM {TABLE} ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def test_check_queries_passes_within_the_limit(
    connection: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_queries(lambda: all_at_once(connection), at_most=1)
    assert capsys.readouterr().out == "\u2705 1 query \u2014 well done.\n"


def test_check_queries_fails_over_the_limit_with_the_hint(
    connection: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = check_queries(lambda: one_by_one(connection), at_most=1, hint="fetch them together.")

    assert not ok
    assert capsys.readouterr().out == (
        "\u274c 3 queries, expected at most 1. Hint: fetch them together.\n"
    )


def test_check_queries_reports_an_exception_instead_of_raising(
    connection: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> None:
        raise AttributeError("'Review' object has no attribute 'prodcut'")

    assert not check_queries(broken, at_most=1, hint="check the spelling.")
    assert capsys.readouterr().out == (
        "\u274c your code raised AttributeError: 'Review' object has no attribute 'prodcut'. "
        "Hint: check the spelling.\n"
    )


def test_check_queries_calls_a_raising_stub_not_attempted(
    connection: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def stub() -> list[str]:
        raise NotImplementedError

    assert not check_queries(stub, at_most=1)
    assert NOT_ATTEMPTED in capsys.readouterr().out


def test_check_queries_calls_a_stub_returning_none_not_attempted(
    connection: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def stub() -> None:
        # your code here
        pass

    assert not check_queries(stub, at_most=1)
    assert NOT_ATTEMPTED in capsys.readouterr().out


def test_check_queries_fails_a_wrong_result_under_the_limit(
    connection: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = check_queries(lambda: [], at_most=1, expect=["row 1", "row 2", "row 3"])

    assert not ok
    assert "but the result is []" in capsys.readouterr().out


def test_check_queries_asks_for_the_function_not_its_result(
    connection: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not check_queries(all_at_once(connection), at_most=1)  # type: ignore[arg-type]
    assert "pass the function itself" in capsys.readouterr().out


def test_check_equal_passes_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_equal(2, 2)
    assert not check_equal(101, 2, hint="count the loop.")

    assert capsys.readouterr().out.splitlines() == [
        "\u2705 your answer is correct \u2014 well done.",
        "\u274c your answer is 101, expected 2. Hint: count the loop.",
    ]


def test_check_equal_calls_none_not_attempted(capsys: pytest.CaptureFixture[str]) -> None:
    assert not check_equal(None, 2)
    assert NOT_ATTEMPTED in capsys.readouterr().out


def test_check_equal_survives_a_comparison_that_raises(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Grumpy:
        def __eq__(self, other: object) -> bool:
            raise TypeError("no comparing")

    assert not check_equal(Grumpy(), 2)
    assert "TypeError: no comparing" in capsys.readouterr().out


def test_check_reports_truthiness_of_a_callable(capsys: pytest.CaptureFixture[str]) -> None:
    assert check(lambda: 1 < 2)
    assert not check(lambda: 1 > 2, hint="flip it.")

    assert capsys.readouterr().out.splitlines() == [
        "\u2705 Correct \u2014 well done.",
        "\u274c Not yet. Hint: flip it.",
    ]


def test_check_with_expect_compares_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert check(lambda: 3, expect=3)
    assert not check(lambda: {}["missing"], expect=3)
    assert "KeyError" in capsys.readouterr().out


def test_verdict_is_truthy_but_shows_nothing_as_cell_output(capsys) -> None:
    verdict = check_equal(2, 2)
    assert verdict and bool(verdict) is True
    assert verdict._ipython_display_() is None
    assert not check_equal(1, 2)
