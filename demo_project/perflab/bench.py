"""Measure seeding: a whole template built end to end, and the write path on its own.

``python -m perflab bench-seed`` builds the ``large`` template from nothing (migrations, rows
generated and written, indexes, checks, ANALYZE) on SQLite and on PostgreSQL and reports rows
per second; the toolkit promises at least 150,000 on a 2-core machine. ``--paths`` instead
compares the write path against the driver's raw bulk path and Django's bulk_create (the
toolkit promises no less than 70% of the raw rate), with the same rows for every method.
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import bulk
from . import seed as seeding
from .paths import state_dir

__all__ = [
    "TARGET_RATE",
    "TARGET_RATIO",
    "BenchResult",
    "BuildResult",
    "bench_build",
    "bench_seed",
    "format_builds",
    "format_results",
]

TARGET_RATIO = 0.7
#: Rows per second a whole template build reaches end to end, on a 2-core machine.
TARGET_RATE = 150_000


@dataclass
class BuildResult:
    """End-to-end builds of one scale's template on one database: rows and each run's time."""

    database: str
    scale: str
    rows: int
    seconds: list[float]

    @property
    def best_rate(self) -> float:
        return self.rows / min(self.seconds)

    @property
    def median_rate(self) -> float:
        return self.rows / statistics.median(self.seconds)


def _build_once(database: str, scale: seeding.Scale) -> tuple[int, float]:
    """Build ``scale`` from nothing into a scratch database; return rows and seconds."""
    from . import databases, kernel

    if database == "sqlite":
        path = state_dir("bench") / f"build-{scale.name}.sqlite3"
        path.unlink(missing_ok=True)
        started = time.perf_counter()
        rows = databases.build_sqlite(path, scale)
        seconds = time.perf_counter() - started
        path.unlink(missing_ok=True)
        return rows, seconds
    server = kernel.start_lab_service("postgres", strict=True)
    dbname = f"perflab_bench_{scale.name}"
    started = time.perf_counter()
    rows = databases.build_postgres(server, scale, dbname)
    seconds = time.perf_counter() - started
    databases.use_database(databases.postgres_settings(server, "postgres"))
    server.drop_database(dbname)
    return rows, seconds


def bench_build(scale: seeding.Scale, database: str, *, repeat: int = 1) -> BuildResult:
    """Time ``repeat`` end-to-end builds of ``scale``'s template on ``database``."""
    from . import django_setup

    django_setup.configure_django()
    runs = [_build_once(database, scale) for _ in range(repeat)]
    return BuildResult(database, scale.name, runs[0][0], [seconds for _, seconds in runs])


def format_builds(results: list[BuildResult]) -> tuple[str, bool]:
    """Return a printable table of build rates and whether every best rate meets the target."""
    lines = [f"{'database':<12}{'scale':<9}{'rows':>11}{'runs':>6}{'best s':>9}"
             f"{'best rows/s':>14}{'median rows/s':>16}"]
    for r in results:
        lines.append(f"{r.database:<12}{r.scale:<9}{r.rows:>11,}{len(r.seconds):>6}"
                     f"{min(r.seconds):>9.1f}{r.best_rate:>14,.0f}{r.median_rate:>16,.0f}")
    ok = all(r.best_rate >= TARGET_RATE for r in results)
    verdict = "OK" if ok else "BELOW TARGET"
    lines.append(f"End-to-end template builds, target ≥ {TARGET_RATE:,} rows/s: {verdict}")
    return "\n".join(lines), ok


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
    materialized = list(table.batches())  # generating rows is not what we time
    return seeding.TableRows(table.table, table.columns, sum(map(len, materialized)),
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
                bulk.write_rows(connection, table)
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
        with bulk.bulk_load(connection):
            bulk.write_rows(connection, table)

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


def run(*, scale: str = "large", database: str = "both", repeat: int = 1, paths: bool = False,
        rows: int = 200_000) -> int:
    """Run the benchmark the command line asked for, print it; return the exit code."""
    if paths:
        text, ratio = format_results(bench_seed(rows=rows))
        print(text)
        return 0 if ratio >= TARGET_RATIO else 1
    from .errors import ServiceUnavailable
    from .services import is_strict

    size = seeding.get_scale(scale)
    results = []
    for name in ("sqlite", "postgres") if database == "both" else (database,):
        print(f"Building the {size.name!r} template on {name}, {repeat} time(s)...", flush=True)
        try:
            results.append(bench_build(size, name, repeat=repeat))
        except ServiceUnavailable as exc:
            if database != "both" or is_strict():
                raise
            print(f"Skipped {name}: {exc}")
    text, ok = format_builds(results)
    print(text)
    return 0 if ok else 1
