"""Measure the seeding path against the driver's raw bulk path and Django's bulk_create.

The toolkit promises to seed at no less than 70% of what the driver can do raw; this command
checks that promise in one run, on this machine, with the same rows for every method.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import seed as seeding
from .paths import state_dir

__all__ = ["TARGET_RATIO", "BenchResult", "bench_seed", "format_results"]

TARGET_RATIO = 0.7


@dataclass
class BenchResult:
    method: str
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def _review_rows(rows: int, *, vendor: str = "sqlite") -> seeding.TableRows:
    scale = seeding.Scale("bench", categories=10, tags=10, products=1_000, customers=1_000,
                          reviews=rows, orders=0)
    table = next(t for t in seeding.generate(scale, vendor=vendor) if t.table == "shop_review")
    materialized = list(table.rows())  # generating rows is not what we time
    return seeding.TableRows(table.table, table.columns, len(materialized),
                             lambda: iter(materialized))


def _empty_schema_sqlite() -> Path:
    """Return a migrated SQLite file with the shop's tables and parents of reviews, no reviews."""
    from django.db import connection

    from . import databases, django_setup

    path = state_dir("bench") / f"schema-{django_setup.schema_version()}.sqlite3"
    if not path.exists():
        building = path.with_suffix(".building")
        building.unlink(missing_ok=True)
        django_setup.use_database(databases.sqlite_settings(building))
        django_setup.migrate()
        scale = seeding.Scale("bench", categories=10, tags=10, products=1_000, customers=1_000,
                              reviews=0, orders=0)
        for table in seeding.generate(scale):
            if table.table in {"shop_category", "shop_product", "auth_user"}:
                seeding.write_rows(connection, table)
        connection.close()
        building.replace(path)
    return path


def _fresh_copy(schema: Path, name: str) -> Path:
    target = state_dir("bench") / f"{name}.sqlite3"
    shutil.copyfile(schema, target)
    return target


def _time(func: Callable[[], Any]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def _bench_sqlite(table: seeding.TableRows, schema: Path) -> list[BenchResult]:
    python_rows = list(_review_rows(table.count, vendor="python").rows())
    from django.db import connection, transaction

    from shop.models import Review

    from . import databases, django_setup

    results = []
    columns = ", ".join(table.columns)
    marks = ", ".join("?" for _ in table.columns)
    ready = list(table.rows())

    def raw() -> None:
        with sqlite3.connect(_fresh_copy(schema, "raw"), isolation_level=None) as db:
            db.execute("BEGIN")
            db.executemany(f"INSERT INTO shop_review ({columns}) VALUES ({marks})", ready)
            db.execute("COMMIT")

    def toolkit() -> None:
        django_setup.use_database(databases.sqlite_settings(_fresh_copy(schema, "toolkit")))
        with seeding.bulk_load(connection):
            seeding.write_rows(connection, table)

    def bulk_create() -> None:
        django_setup.use_database(databases.sqlite_settings(_fresh_copy(schema, "orm")))
        with transaction.atomic():
            Review.objects.bulk_create(
                (Review(**dict(zip(table.columns, row, strict=True))) for row in python_rows),
                batch_size=2_000,
            )

    for label, func in (("Django bulk_create", bulk_create), ("raw executemany", raw),
                        ("perflab write_rows", toolkit)):
        # Best of three: the question is what each path can do, not what the disk did once.
        best = min(_time(func) for _ in range(3))
        results.append(BenchResult(label, table.count, best))
    connection.close()
    return results


def bench_seed(*, rows: int = 200_000) -> list[BenchResult]:
    """Time writing ``rows`` reviews three ways into identical empty SQLite databases."""
    from . import django_setup

    django_setup.configure_django()
    table = _review_rows(rows)
    return _bench_sqlite(table, _empty_schema_sqlite())


def format_results(results: list[BenchResult]) -> tuple[str, float]:
    """Return a printable table and the toolkit's ratio to the raw path."""
    raw = next(r for r in results if r.method.startswith("raw"))
    toolkit = next(r for r in results if r.method.startswith("perflab"))
    lines = [f"Seeding {raw.rows:,} review rows into SQLite (best of 3 runs each)",
             f"{'method':<22}{'rows/s':>12}{'ratio to raw':>15}"]
    for r in results:
        lines.append(f"{r.method:<22}{r.rows_per_second:>12,.0f}"
                     f"{r.rows_per_second / raw.rows_per_second:>15.2f}")
    ratio = toolkit.rows_per_second / raw.rows_per_second
    verdict = "OK" if ratio >= TARGET_RATIO else "BELOW TARGET"
    lines.append(
        f"perflab reaches {ratio:.2f} of the raw rate (target ≥ {TARGET_RATIO}): {verdict}"
    )
    return "\n".join(lines), ratio
