"""Shared fixtures: every test run gets its own perflab state folder and a tiny lab."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Tests must never touch a learner's real templates, lab copies or servers. Set before any
# perflab import so every module (and every kernel nbval starts) sees the same folder.
os.environ.setdefault("PERFLAB_HOME", tempfile.mkdtemp(prefix="perflab-tests-"))


@pytest.fixture(scope="session")
def lab():
    """Return a lab at the tiny scale; tests that change rows must undo it or call reset()."""
    from perflab import setup

    return setup(scale="tiny", quiet=True)


@pytest.fixture(scope="module")
def scratch_table(lab) -> Iterator[Callable[..., Any]]:
    """Yield ``make(name, columns_sql, rows)``: a raw table on the lab's connection, for tests
    of the measuring tools that want queries unrelated to the shop. Dropped after the module."""
    from django.db import connections

    conn = connections["default"]
    made: list[str] = []

    def make(name: str, columns_sql: str, rows: list[tuple[Any, ...]]) -> Any:
        marks = ", ".join(["%s"] * len(rows[0]))
        with conn.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
            cursor.execute(f"CREATE TABLE {name} ({columns_sql})")
            cursor.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
        made.append(name)
        return conn

    yield make
    with conn.cursor() as cursor:
        for name in made:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
