"""The seeding benchmarks run and report a rate (their numbers are not checked), and a template
holds the same data whichever database it was built on."""

from __future__ import annotations

from typing import Any

import pytest

from perflab import bench
from perflab import seed as seeding


def test_bench_seed_times_three_paths_on_the_same_rows(lab) -> None:
    results = bench.bench_seed(rows=3_000)
    assert [r.method for r in results] == [
        "Django bulk_create", "raw executemany", "perflab write_rows",
    ]
    assert all(r.rows == 3_000 and r.seconds > 0 for r in results)
    text, ratio = bench.format_results(results)
    assert "ratio to raw" in text and ratio > 0
    lab.reset()  # the benchmark pointed Django at its own scratch databases


def test_format_results_flags_a_toolkit_below_the_target() -> None:
    results = [
        bench.BenchResult("Django bulk_create", 1_000, 1.0),
        bench.BenchResult("raw executemany", 1_000, 0.1),
        bench.BenchResult("perflab write_rows", 1_000, 0.2),
    ]
    text, ratio = bench.format_results(results)
    assert ratio == 0.5
    assert text.endswith("BELOW TARGET")


def _expected_rows(scale: seeding.Scale) -> int:
    return sum(table.count for table in seeding.generate(scale))


def test_bench_build_reports_the_end_to_end_rate(lab, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = seeding.get_scale("tiny")
    result = bench.bench_build(tiny, "sqlite", repeat=2)
    assert result.rows == _expected_rows(tiny) and len(result.seconds) == 2
    assert result.best_rate >= result.median_rate > 0
    assert bench.run(scale="tiny", database="sqlite") in (0, 1)
    out = capsys.readouterr().out
    assert "best rows/s" in out and "median rows/s" in out and "target ≥ 150,000" in out
    row = next(line for line in out.splitlines() if line.startswith("sqlite"))
    assert row.split()[1:3] == ["tiny", f"{result.rows:,}"]
    lab.reset()


def test_format_builds_flags_a_build_below_the_target() -> None:
    fast = bench.BuildResult("sqlite", "large", 3_000_000, [15.0, 16.0, 30.0])
    slow = bench.BuildResult("postgres", "large", 3_000_000, [25.0])
    assert fast.best_rate == 200_000 and fast.median_rate == 187_500
    text, ok = bench.format_builds([fast])
    assert ok and text.endswith("OK") and "200,000" in text
    text, ok = bench.format_builds([fast, slow])
    assert not ok and text.endswith("BELOW TARGET") and "120,000" in text


def _dump() -> dict[str, list[tuple[Any, ...]]]:
    """Return every seeded table's rows through the ORM, so both backends give Python types."""
    from django.contrib.auth.models import User

    from shop.models import Category, Order, OrderLine, Product, Review, Tag

    models = [Category, Tag, Product, Product.tags.through, User, Review, Order, OrderLine]
    dump = {
        model._meta.db_table: list(model.objects.order_by("pk").values_list(
            *[field.attname for field in model._meta.concrete_fields]))
        for model in models
    }
    # Each build gives the admin a new random unusable password ("!" and random characters).
    dump["auth_user"] = [(pk, password[:1], *rest) for pk, password, *rest in dump["auth_user"]]
    return dump


def test_sqlite_and_postgres_templates_hold_identical_data(lab, tmp_path) -> None:
    from django.db import connections

    from perflab import databases, kernel
    from perflab.errors import ServiceUnavailable
    from perflab.services import is_strict

    tiny = seeding.get_scale("tiny")
    try:
        server = kernel.start_lab_service("postgres", strict=True)
    except ServiceUnavailable:
        if is_strict():
            raise
        pytest.skip("PostgreSQL is not installed")
    try:
        sqlite_rows = databases.build_sqlite(tmp_path / "tiny.sqlite3", tiny)
        databases.use_database(databases.sqlite_settings(tmp_path / "tiny.sqlite3"))
        on_sqlite = _dump()
        postgres_rows = databases.build_postgres(server, tiny, "perflab_test_identical")
        databases.use_database(databases.postgres_settings(server, "perflab_test_identical"))
        on_postgres = _dump()
        connections.close_all()
    finally:
        databases.use_database(databases.postgres_settings(server, "postgres"))
        server.drop_database("perflab_test_identical")
        lab.reset()
    assert sqlite_rows == postgres_rows == _expected_rows(tiny)
    assert on_sqlite.keys() == on_postgres.keys()
    for table, rows in on_sqlite.items():
        assert len(rows) > 0 and rows == on_postgres[table], table
