"""The seeding benchmark runs all three paths on the same rows (its numbers are not checked)."""

from __future__ import annotations

from perflab import bench


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
