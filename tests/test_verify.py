"""`perflab verify`: committed ratios read back from outputs and checked against a fresh run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from perflab.verify import Drift, check_lessons, compare_records, format_table, ratio_records


def _notebook(*outputs_metadata: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cells": [
            {"cell_type": "code", "outputs": [{"output_type": "display_data", "data": {},
                                               "metadata": {"perflab": records}}]}
            for records in outputs_metadata
        ]
    }


def _record(comparison: str, **ratios: float) -> dict[str, Any]:
    return {"comparison": comparison, "baseline": "slow", "ratios": ratios, "tolerance": 0.3}


def test_ratio_records_reads_every_ratio_once_by_cell_and_comparison() -> None:
    chart_and_table = [_record("c", fast=4.0), _record("c", fast=4.0, faster=8.0)]
    nb = _notebook(chart_and_table, [_record("c", fast=2.0)])

    assert ratio_records(nb) == {
        (0, "c", "fast"): (4.0, 0.3), (0, "c", "faster"): (8.0, 0.3), (1, "c", "fast"): (2.0, 0.3),
    }


def test_recorded_figures_are_not_this_runs_to_reproduce() -> None:
    recorded = {**_record("from Django 6.1", fast=9.0), "recorded": True}

    assert ratio_records(_notebook([recorded])) == {}


def test_a_ratio_holds_within_its_tolerance_and_not_beyond() -> None:
    committed = {(0, "c", "a"): (4.0, 0.3), (0, "c", "b"): (4.0, 0.3), (0, "c", "c"): (4.0, 0.3)}
    now = {(0, "c", "a"): (5.1, 0.3), (0, "c", "b"): (5.3, 0.3)}

    a, b, c = compare_records("02-lesson", committed, now)

    assert a.held and round(a.drift, 3) == 0.275
    assert not b.held
    assert c.now is None and not c.held  # a comparison that disappeared is a failure too


def test_the_table_says_which_ratios_drifted() -> None:
    table = format_table([
        Drift("02-lesson", 3, "aggregate vs loop", "aggregate", 40.0, 44.0, 0.3),
        Drift("02-lesson", 5, "exists vs len", "exists()", 0.5, 0.9, 0.3),
    ])

    assert "40x faster" in table and "44x faster" in table and "10%" in table
    assert "2x slower" in table and "OVER" in table
    assert table.endswith("1 of 2 ratios reproduced within their tolerance.")


LESSON = """
from perflab import setup
from perflab.compare import compare
from perflab.measure import measure
lab = setup(scale="tiny", quiet=True)
slow = measure("slow", lambda: sum(range(200_000)))
fast = measure("fast", lambda: sum(range(20_000)))
# A wide tolerance: this test is about the records, not about how steady the machine is.
compare(slow, fast, title="sums", tolerance=5.0)
"""


@pytest.mark.slow
def test_a_lesson_run_twice_reproduces_its_ratio(tmp_path: Path) -> None:
    import nbformat

    path = tmp_path / "99-sums.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(LESSON)]), path)
    from perflab.notebooks import execute_notebook

    assert execute_notebook(path, scale="tiny").errors == []
    committed = ratio_records(json.loads(path.read_text()))

    drifts, errors = check_lessons([path], scale="tiny")

    assert errors == []
    assert set(committed) == {(0, "sums", "fast")}  # from the chart's output and the table's
    assert committed[(0, "sums", "fast")][0] > 3  # a tenth of the work
    assert [d.label for d in drifts] == ["fast"]
    assert drifts[0].now is not None and drifts[0].tolerance == 5.0 and drifts[0].held


def _run(ratio_b: float, ratio_c: float) -> dict:
    return {"cells": [{"cell_type": "code", "outputs": [{"metadata": {"perflab": [
        {"comparison": "c", "baseline": "a", "ratios": {"b": ratio_b, "c": ratio_c},
         "tolerance": 0.3},
    ]}}]}]}


def test_most_typical_keeps_the_run_closest_to_the_medians() -> None:
    from perflab.verify import most_typical

    runs = [_run(4.0, 10.0), _run(2.0, 6.0), _run(3.1, 7.9), _run(3.0, 30.0)]
    assert most_typical(runs) == 2
    assert most_typical([_run(2.0, 2.0)]) == 0


def test_most_typical_prefers_no_outlier_to_the_smallest_sum() -> None:
    from perflab.verify import most_typical

    # Medians: b 3.0, c 10.0. Run 0 has b on its median and c 35% off (sum 0.3, worst 0.3);
    # run 1 has both 20% off (sum 0.4, worst 0.2). A re-run fails on its worst ratio: keep run 1.
    runs = [_run(3.0, 13.5), _run(3.66, 8.19), _run(2.0, 10.0), _run(5.0, 20.0), _run(1.5, 5.0)]
    assert most_typical(runs) == 1


def test_unsteady_names_the_ratios_that_spread_wider_than_their_tolerance() -> None:
    from perflab.verify import unsteady

    assert unsteady([_run(3.0, 10.0), _run(3.2, 10.5), _run(2.9, 9.8)]) == []
    assert unsteady([_run(3.0, 10.0), _run(3.2, 16.0), _run(2.9, 9.8)]) == [("c", "c", 9.8, 16.0)]
