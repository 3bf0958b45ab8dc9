"""Tests for perflab.measure: query capture, timing, grouping, compare, EXPLAIN, the magic."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from perflab import capture
from perflab import compare as compare_module
from perflab import measure as measure_module
from perflab.capture import print_sql
from perflab.compare import compare
from perflab.errors import PerflabError, UnknownChoice
from perflab.explain import Explain, explain
from perflab.formatting import format_bytes, format_ratio
from perflab.measure import Measurement, measure, peak_memory, results
from perflab.sql import elide

TABLE = "perflab_measure_t"


@pytest.fixture(scope="module")
def connection(scratch_table) -> Any:
    """Return the lab's connection, holding a scratch table for these tests."""
    return scratch_table(
        TABLE,
        "id INTEGER PRIMARY KEY, name TEXT, n INTEGER",
        [(i, f"row {i}", i % 3) for i in range(1, 11)],
    )


@pytest.fixture
def sqlite(connection: Any) -> Any:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite plan text")
    return connection


@pytest.fixture
def model(connection: Any) -> Any:
    """Return an unmanaged model over the scratch table, kept out of the global app registry."""
    from django.apps.registry import Apps
    from django.db import models

    class Row(models.Model):
        name = models.TextField()
        n = models.IntegerField()

        class Meta:
            apps = Apps()
            app_label = "perflab_measure_tests"
            db_table = TABLE
            managed = False

    return Row


def fetch_name(connection: Any, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT name FROM {TABLE} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


class FakeClock:
    """Stand in for perf_counter so timings are exact; each call to tick() advances it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def tick(self, ms: float) -> None:
        self.now += ms / 1000


def measurement(label: str, *, queries: int, times_ms: list[float]) -> Measurement:
    query = capture.CapturedQuery(
        sql="SELECT 1", params=(), many=False, duration_ms=0.1, rendered="SELECT 1"
    )
    return Measurement(label=label, queries=[query] * queries, times_ms=times_ms)


# --- capture ------------------------------------------------------------------------------------


def test_measure_counts_queries_and_keeps_sql_and_params(connection: Any) -> None:
    m = measure("three", lambda: [fetch_name(connection, pk) for pk in (1, 2, 3)], repeat=1)

    assert m.query_count == 3
    assert [q.sql for q in m.queries] == [f"SELECT name FROM {TABLE} WHERE id = %s"] * 3
    assert [tuple(q.params) for q in m.queries] == [(1,), (2,), (3,)]
    assert m.queries[0].rendered == f"SELECT name FROM {TABLE} WHERE id = 1"
    assert m.result == ["row 1", "row 2", "row 3"]


def test_measure_marks_executemany(connection: Any) -> None:
    def insert_and_delete() -> None:
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {TABLE} (id, name, n) VALUES (%s, %s, 0)",
                [
                    (100, "a"),
                    (101, "b"),
                ],
            )
            cursor.execute(f"DELETE FROM {TABLE} WHERE id >= 100")

    m = measure("bulk", insert_and_delete, repeat=1, warmup=0)

    assert [q.many for q in m.queries] == [True, False]
    assert m.queries[0].params == [(100, "a"), (101, "b")]


def test_measure_times_every_repeat_and_reports_the_median(
    connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(measure_module, "perf_counter", clock)
    # The warmup, then the captured run, then five rounds (each long enough: no looping).
    durations = iter([99.0, 50.0, 30.0, 26.0, 40.0, 28.0, 90.0])

    m = measure("timed", lambda: clock.tick(next(durations)), repeat=5, warmup=1)

    assert m.times_ms == pytest.approx([30.0, 26.0, 40.0, 28.0, 90.0])
    assert m.median_ms == pytest.approx(30.0)
    assert m.spread_ms == pytest.approx((26.0, 90.0))
    assert m.loops == 1


def test_fast_calls_are_looped_until_a_round_lasts_long_enough(
    connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(measure_module, "perf_counter", clock)
    calls = []

    def one_ms() -> None:
        calls.append(1)
        clock.tick(1.0)

    m = measure("fast", one_ms, repeat=3, warmup=1)

    assert m.loops == measure_module.MIN_ROUND_MS  # 25 calls of 1 ms make a round
    assert m.times_ms == pytest.approx([1.0, 1.0, 1.0])  # per call, not per round
    # warmup + captured + one clean call to calibrate + 3 rounds of 25
    assert len(calls) == 3 + 3 * 25


def test_measure_captures_queries_in_a_run_of_their_own(connection: Any) -> None:
    calls = iter(range(1, 10_000))

    m = measure("first", lambda: fetch_name(connection, 1 + next(calls) % 5), repeat=3, warmup=1)

    # Call 1 is the warmup; call 2 is captured (pk 3), and the clock never saw it.
    assert [tuple(q.params) for q in m.queries] == [(3,)]
    assert len(m.times_ms) == 3


def test_a_one_shot_measurement_runs_once_and_times_its_captured_run(connection: Any) -> None:
    calls = []

    m = measure("once", lambda: calls.append(fetch_name(connection, 1)), repeat=1, warmup=0)

    assert len(calls) == 1
    assert m.query_count == 1 and len(m.times_ms) == 1 and m.loops == 1


def test_the_garbage_collector_is_off_inside_timed_rounds_unless_asked(connection: Any) -> None:
    import gc

    seen: list[bool] = []
    measure("gc off", lambda: seen.append(gc.isenabled()), repeat=2, warmup=1)
    assert seen[:3] == [True, True, True]  # warmup, captured run, calibration: all untimed
    assert set(seen[3:]) == {False}
    assert gc.isenabled()

    seen.clear()
    measure("gc on", lambda: seen.append(gc.isenabled()), repeat=2, warmup=1, gc=True)
    assert set(seen) == {True}


def test_the_cpu_timer_does_not_count_waiting(connection: Any) -> None:
    import time

    wall = measure("sleep, wall", lambda: time.sleep(0.03), repeat=2, warmup=1)
    cpu = measure("sleep, cpu", lambda: time.sleep(0.03), repeat=2, warmup=1, timer="cpu")

    assert wall.median_ms >= 29
    assert cpu.median_ms < 5


def test_an_unknown_timer_lists_the_choices(connection: Any) -> None:
    with pytest.raises(UnknownChoice, match="'wall', 'cpu'"):
        measure("x", lambda: None, timer="gpu")


def test_compare_times_its_candidates_again_interleaved(
    connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compare_module, "INTERLEAVE_BUDGET_MS", 0.0)  # their own four rounds
    order: list[str] = []
    slow = measure("slow", lambda: order.append("a") or sum(range(300_000)), repeat=4)
    fast = measure("fast", lambda: order.append("b") or sum(range(100_000)), repeat=4)
    order.clear()

    cmp = compare(slow, fast, chart=False, interleave=True)

    runs = [order[i] for i in range(len(order)) if i == 0 or order[i] != order[i - 1]]
    # a|b, b|a, a|b, b|a: five runs of one name, where "all of one first" would make two.
    assert runs == ["a", "b", "a", "b", "a"]
    assert slow.interleaved and fast.interleaved
    assert len(slow.times_ms) == len(fast.times_ms) == 4
    assert cmp.speedup(fast) > 1


def test_cheap_interleaved_candidates_get_more_rounds_within_a_budget(connection: Any) -> None:
    def timed(label: str, best_ms: float, *, repeat: int = 9, loops: int = 1) -> Measurement:
        return Measurement(label, times_ms=[best_ms] * repeat, repeat=repeat, loops=loops)

    rounds = compare_module.interleaved_rounds
    budget, factor = compare_module.INTERLEAVE_BUDGET_MS, compare_module.MAX_ROUNDS_FACTOR
    # Two candidates of one 25 ms round each: capped at four times their repeat.
    assert rounds([timed("a", 0.05, loops=500), timed("b", 0.025, loops=1000)]) == 9 * factor
    # Ten candidates of 100 ms: as many rounds as fit in the budget, which grows with them.
    ten = [timed(str(i), 100.0, repeat=5) for i in range(10)]
    assert rounds(ten) == int(budget * 10 // 1000) > 5
    # Slow candidates keep their own repeat, the largest of them.
    assert rounds([timed("slow", 900.0, repeat=3), timed("slower", 1200.0, repeat=5)]) == 5


def test_a_quick_run_interleaves_two_rounds_only(
    connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap = [Measurement(c, times_ms=[0.05] * 9, repeat=9, loops=500) for c in "ab"]
    assert compare_module.interleaved_rounds(cheap) > 9
    monkeypatch.setenv("PERFLAB_QUICK", "1")  # what nbval's kernels get (notebooks/conftest.py)
    assert compare_module.interleaved_rounds(cheap) == 2


def test_compare_will_not_quietly_skip_a_measurement_it_cannot_interleave(connection: Any) -> None:
    calls: list[int] = []
    once = measure("miss", lambda: calls.append(1), repeat=1, warmup=0)
    hit = measure("hit", lambda: None)

    with pytest.raises(PerflabError, match=r"can't time 'miss' again: it was measured with warmup"):
        compare(once, hit, chart=False, interleave=True)
    with measure("block") as block:
        pass
    with pytest.raises(PerflabError, match=r"'block' again: it was a `with lab\.measure"):
        compare(hit, block, chart=False, interleave=True)

    assert calls == [1] and not once.interleaved and not hit.interleaved


def test_compare_times_nothing_again_unless_asked(connection: Any) -> None:
    # An index added between two measurements, say: running the first again would use it.
    calls: list[str] = []
    before = measure("before", lambda: calls.append("before"))
    after = measure("after", lambda: calls.append("after"))
    calls.clear()

    compare(before, after, chart=False)

    assert calls == [] and not before.interleaved


def test_comparisons_and_sentences_carry_their_ratios_for_verify() -> None:
    slow = measurement("slow", queries=3, times_ms=[30.0])
    fast = measurement("fast", queries=1, times_ms=[10.0])
    cmp = compare(slow, fast, title="a title", chart=False, tolerance=0.5)

    _, metadata = cmp._repr_mimebundle_()
    data, sentence_metadata = cmp.sentence("fast")._repr_mimebundle_()

    expected = {"comparison": "a title", "baseline": "slow", "ratios": {"fast": 3.0},
                "tolerance": 0.5}
    assert metadata == {"perflab": [expected]}
    assert sentence_metadata == {"perflab": [expected]}
    assert data["text/markdown"].startswith("fast is about 3 times faster than slow")


def test_measure_propagates_an_exception_from_the_function(connection: Any) -> None:
    def broken() -> None:
        raise ZeroDivisionError("boom")

    with pytest.raises(ZeroDivisionError):
        measure("broken", broken)


def test_measure_rejects_a_repeat_of_zero(connection: Any) -> None:
    with pytest.raises(PerflabError):
        measure("none", lambda: None, repeat=0)


def test_with_block_captures_queries_and_times_one_run(connection: Any) -> None:
    with measure("block") as m:
        fetch_name(connection, 1)
        fetch_name(connection, 2)

    assert m.query_count == 2
    assert len(m.times_ms) == 1
    assert m.median_ms >= 0


def test_with_block_records_queries_then_lets_the_exception_through(connection: Any) -> None:
    with pytest.raises(KeyError), measure("fails") as m:
        fetch_name(connection, 1)
        raise KeyError("after one query")

    assert m.query_count == 1


def test_with_block_refuses_repeat(connection: Any) -> None:
    with pytest.raises(PerflabError, match="runs once"):
        measure("block", repeat=5)


def test_print_sql_prints_each_query_elided_with_params(
    connection: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with print_sql():
        fetch_name(connection, 7)

    assert capsys.readouterr().out == (
        f"[1] SELECT name FROM {TABLE} WHERE id = %s  -- params: [7]\n"
    )


# --- grouping -----------------------------------------------------------------------------------


def test_similar_queries_group_by_sql_not_params(connection: Any) -> None:
    m = measure("n+1", lambda: [fetch_name(connection, pk) for pk in (1, 2, 3)], repeat=1)

    assert m.similar_groups == [(f"SELECT name FROM {TABLE} WHERE id = %s", 3)]
    assert m.duplicate_groups == []


def test_duplicate_queries_need_the_same_params(connection: Any) -> None:
    m = measure("dupes", lambda: [fetch_name(connection, pk) for pk in (1, 1, 2, 2, 2)], repeat=1)

    assert [g.count for g in m.duplicate_groups] == [3, 2]
    assert m.similar_groups[0].count == 5


def test_single_queries_form_no_groups(connection: Any) -> None:
    m = measure("once", lambda: fetch_name(connection, 1), repeat=1)

    assert m.similar_groups == []
    assert m.duplicate_groups == []


# --- elide --------------------------------------------------------------------------------------


def test_elide_replaces_a_dotted_select_list() -> None:
    sql = 'SELECT "p"."id", "p"."name" FROM "p" WHERE "p"."id" = %s ORDER BY "p"."name"'

    assert elide(sql) == 'SELECT ... FROM "p" WHERE "p"."id" = %s ORDER BY "p"."name"'


def test_elide_keeps_a_select_list_without_dots() -> None:
    sql = 'SELECT COUNT(*) AS "__count" FROM "p"'

    assert elide(sql) == sql


def test_elide_leaves_subqueries_in_where_alone() -> None:
    sql = 'SELECT "a"."id" FROM "a" WHERE "a"."id" IN (SELECT U0."a_id" FROM "b" U0)'

    assert elide(sql) == 'SELECT ... FROM "a" WHERE "a"."id" IN (SELECT U0."a_id" FROM "b" U0)'


def test_elide_skips_the_from_inside_a_select_list_subquery() -> None:
    sql = 'SELECT "a"."id", (SELECT COUNT(*) FROM "b" WHERE "b"."a" = "a"."id") AS "n" FROM "a"'

    assert elide(sql) == 'SELECT ... FROM "a"'


def test_elide_keeps_distinct() -> None:
    assert elide('SELECT DISTINCT "a"."x" FROM "a"') == 'SELECT DISTINCT ... FROM "a"'


# --- display ------------------------------------------------------------------------------------


def test_measurement_str_is_one_line_with_label_queries_best_and_spread() -> None:
    m = measurement("naive loop", queries=101, times_ms=[38.0, 36.0, 41.0])

    assert str(m) == "naive loop: 101 queries, best 36.0 ms (median 38.0, slowest 41.0 ms, 3 runs)"


def test_measurement_html_shows_groups_and_escapes_sql(connection: Any) -> None:
    m = measure("<n+1>", lambda: [fetch_name(connection, pk) for pk in (1, 2)], repeat=1)

    page = m._repr_html_()
    assert "&lt;n+1&gt;" in page
    assert "Similar queries" in page
    assert "<details>" in page


def test_show_sql_prints_a_limited_list(
    connection: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    m = measure("n+1", lambda: [fetch_name(connection, pk) for pk in (1, 2, 3)], repeat=1)

    m.show_sql(limit=2)

    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        f"  1. SELECT name FROM {TABLE} WHERE id = 1",
        f"  2. SELECT name FROM {TABLE} WHERE id = 2",
        "     ... and 1 more query",
    ]


# --- compare ------------------------------------------------------------------------------------


def test_compare_speedup_is_baseline_best_over_best() -> None:
    naive = measurement("naive", queries=101, times_ms=[40.0])
    fixed = measurement("fixed", queries=1, times_ms=[2.0])

    comparison = compare(naive, fixed, chart=False)

    assert comparison.speedup("fixed") == pytest.approx(20.0)
    assert [r.speedup for r in comparison.rows] == pytest.approx([1.0, 20.0])
    assert [r.is_baseline for r in comparison.rows] == [True, False]


def test_compare_ratio_is_of_the_best_rounds_not_the_medians() -> None:
    # A slow phase covering most of the fast candidate's rounds moves its median, not its best.
    slow = measurement("slow", queries=0, times_ms=[40.0, 42.0, 41.0])
    fast = measurement("fast", queries=0, times_ms=[2.0, 4.0, 4.5])

    comparison = compare(slow, fast, chart=False)

    assert comparison.speedup("fast") == pytest.approx(20.0)
    assert comparison.rows[1].best_ms == 2.0
    assert comparison.rows[1].median_ms == 4.0
    assert comparison.record()["ratios"] == {"fast": 20.0}


def test_compare_uses_the_named_baseline() -> None:
    naive = measurement("naive", queries=101, times_ms=[40.0])
    fixed = measurement("fixed", queries=1, times_ms=[2.0])

    comparison = compare(naive, fixed, baseline=fixed, chart=False)

    assert comparison.speedup(naive) == pytest.approx(0.05)


def test_sentence_rounds_large_ratios_to_whole_numbers() -> None:
    naive = measurement("the naive loop", queries=101, times_ms=[38.4])
    fixed = measurement("select_related", queries=1, times_ms=[1.0])

    sentence = compare(naive, fixed, chart=False).sentence("select_related")

    assert sentence == (
        "select_related is about 38 times faster than the naive loop (101 \u2192 1 queries)."
    )


def test_sentence_keeps_one_decimal_below_ten() -> None:
    naive = measurement("naive", queries=3, times_ms=[5.0])
    fixed = measurement("fixed", queries=3, times_ms=[2.0])

    assert compare(naive, fixed, chart=False).sentence("fixed") == (
        "fixed is about 2.5 times faster than naive (3 queries each)."
    )


def test_sentence_says_slower_when_slower() -> None:
    naive = measurement("naive", queries=1, times_ms=[2.0])
    worse = measurement("worse", queries=2, times_ms=[6.0])

    assert compare(naive, worse, chart=False).sentence("worse") == (
        "worse is about 3 times slower than naive (1 \u2192 2 queries)."
    )


def test_sentence_says_about_as_fast_for_a_ratio_near_one() -> None:
    a = measurement("a", queries=1, times_ms=[2.0])
    b = measurement("b", queries=1, times_ms=[2.02])

    assert compare(a, b, chart=False).sentence("b") == "b is about as fast as a (1 query each)."


def test_format_ratio_rounds_like_prose() -> None:
    assert [format_ratio(r) for r in (38.4, 9.96, 2.46, 3.0, 1.0)] == ["38", "10", "2.5", "3", "1"]


def test_compare_text_table_lines_up() -> None:
    naive = measurement("naive loop", queries=101, times_ms=[38.0])
    fixed = measurement("fixed", queries=1, times_ms=[1.0])

    text = str(compare(naive, fixed, title="N+1", chart=False))

    assert text.splitlines() == [
        "N+1",
        "label       queries  best ms  median ms  slowest ms  vs baseline",
        "naive loop      101     38.0       38.0        38.0     baseline",
        "fixed             1     1.00       1.00        1.00   38\u00d7 faster",
    ]


def test_compare_looks_up_labels_in_results() -> None:
    results["magic naive"] = measurement("magic naive", queries=10, times_ms=[10.0])
    try:
        fixed = measurement("x", queries=1, times_ms=[1.0])
        comparison = compare("magic naive", fixed, chart=False)
        assert comparison.baseline.label == "magic naive"
    finally:
        del results["magic naive"]


def test_compare_names_the_known_labels_for_an_unknown_one() -> None:
    with pytest.raises(UnknownChoice, match="nope"):
        compare("nope", chart=False)


def test_compare_draws_two_panels() -> None:
    naive = measurement("naive", queries=101, times_ms=[40.0, 38.0, 44.0])
    fixed = measurement("fixed", queries=1, times_ms=[2.0, 1.5, 2.5])

    comparison = compare(naive, fixed, title="N+1")

    assert comparison.figure is not None
    assert [ax.get_title() for ax in comparison.figure.axes] == ["Queries per run", "Time per run"]


def test_compare_without_queries_draws_time_alone_at_one_size() -> None:
    from perflab import charts

    many = [measurement(f"serializer number {i}", queries=0, times_ms=[1.0 + i]) for i in range(8)]
    two = [measurement("a", queries=3, times_ms=[2.0]), measurement("b", queries=1, times_ms=[1.0])]

    time_only = compare(*many, title="no queries").figure
    both = compare(*two, title="queries").figure

    assert [ax.get_title() for ax in time_only.axes] == ["Time per run (no queries sent)"]
    assert tuple(time_only.get_size_inches()) == charts.TIME_ONLY_FIGSIZE  # not 8 bars wide
    assert tuple(both.get_size_inches()) == charts.FIGSIZE


def test_charts_leave_no_figure_open_in_pyplot() -> None:
    import matplotlib.pyplot as plt

    compare(
        measurement("a", queries=2, times_ms=[2.0]), measurement("b", queries=1, times_ms=[1.0])
    )

    assert plt.get_fignums() == []


def test_scaling_chart_draws_one_line_per_series_on_a_log_axis() -> None:
    from perflab.charts import scaling_chart

    fig = scaling_chart(
        [10, 100, 1000],
        {"naive": [1.0, 10.0, 100.0], "fixed": [0.5, 0.6, 0.9]},
        xlabel="reviews",
        ylabel="ms",
        logy=True,
    )

    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["naive", "fixed"]
    assert ax.get_yscale() == "log"


# --- explain ------------------------------------------------------------------------------------


def test_explain_on_sqlite_reports_a_full_scan_then_the_index(sqlite: Any, model: Any) -> None:
    queryset = model.objects.filter(n=2)

    before = explain(queryset)
    with sqlite.cursor() as cursor:
        cursor.execute(f"CREATE INDEX perflab_measure_t_n ON {TABLE} (n)")
    try:
        after = explain(queryset)
    finally:
        with sqlite.cursor() as cursor:
            cursor.execute("DROP INDEX perflab_measure_t_n")

    assert (before.full_scans, before.uses_index()) == ([TABLE], False)
    assert (after.full_scans, after.uses_index("perflab_measure_t_n")) == ([], True)


def test_explain_refuses_analyze_on_sqlite(sqlite: Any, model: Any) -> None:
    with pytest.raises(PerflabError, match="ANALYZE"):
        explain(model.objects.all(), analyze=True)


def test_explain_counts_a_primary_key_lookup_as_index_use(sqlite: Any, model: Any) -> None:
    assert explain(model.objects.filter(pk=1)).uses_index()


SQLITE_PLAN = "\n".join(
    [
        "4 0 0 SCAN TABLE shop_review",
        "9 0 0 LIST SUBQUERY 1",
        "11 9 0 SCAN u2",
        "23 0 0 SEARCH shop_product USING INTEGER PRIMARY KEY (rowid=?)",
    ]
)


def test_sqlite_shape_strips_node_ids_and_indents_children() -> None:
    assert Explain(text=SQLITE_PLAN, vendor="sqlite").shape() == "\n".join(
        [
            "SCAN shop_review",
            "LIST SUBQUERY 1",
            "  SCAN u2",
            "SEARCH shop_product USING INTEGER PRIMARY KEY (rowid=?)",
        ]
    )


def test_sqlite_str_draws_the_tree_like_the_sqlite_shell() -> None:
    assert str(Explain(text=SQLITE_PLAN, vendor="sqlite")) == "\n".join(
        [
            "QUERY PLAN",
            "|--SCAN shop_review",
            "|--LIST SUBQUERY 1",
            "|  `--SCAN u2",
            "`--SEARCH shop_product USING INTEGER PRIMARY KEY (rowid=?)",
        ]
    )


POSTGRES_PLAN = """\
Hash Join  (cost=1.09..2.21 rows=5 width=8) (actual time=0.030..0.034 rows=5 loops=1)
  Hash Cond: (r.product_id = p.id)
  Buffers: shared hit=2
  ->  Seq Scan on shop_review r  (cost=0.00..1.05 rows=5 width=8) (actual time=0.006..0.007 rows=5 loops=1)
        Filter: (rating > 3)
        Rows Removed by Filter: 12
        Buffers: shared hit=1
  ->  Hash  (cost=1.04..1.04 rows=4 width=4) (actual time=0.014..0.014 rows=4 loops=1)
        Buckets: 1024  Batches: 1  Memory Usage: 9kB
        ->  Index Scan using shop_product_pkey on shop_product p  (cost=0.15..8.17 rows=1 width=4) (never executed)
              Index Cond: (id = 3)
Planning:
  Buffers: shared hit=12
Planning Time: 0.123 ms
Execution Time: 0.060 ms"""  # noqa: E501


def test_postgres_shape_keeps_nodes_and_conditions_only() -> None:
    assert Explain(text=POSTGRES_PLAN, vendor="postgresql").shape() == "\n".join(
        [
            "Hash Join",
            "  Hash Cond: (r.product_id = p.id)",
            "  ->  Seq Scan on shop_review r",
            "        Filter: (rating > 3)",
            "  ->  Hash",
            "        ->  Index Scan using shop_product_pkey on shop_product p",
            "              Index Cond: (id = 3)",
        ]
    )


def test_postgres_full_scans_and_index_use() -> None:
    plan = Explain(text=POSTGRES_PLAN, vendor="postgresql")

    assert plan.full_scans == ["shop_review"]
    assert plan.uses_index("shop_product_pkey")
    assert not plan.uses_index("shop_review_rating_idx")


def test_plan_helpers_refuse_vendors_they_cannot_read() -> None:
    with pytest.raises(PerflabError, match="mysql"):
        Explain(text="1 SIMPLE t ALL", vendor="mysql").full_scans  # noqa: B018


# --- the %%measure magic ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ipython(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Yield an InteractiveShell with the magic loaded, leaving no global shell behind."""
    import sys

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    existed = InteractiveShell.initialized()
    saved = sys.displayhook, sys.excepthook, sys.modules.get("__main__")
    old_dir = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = str(tmp_path_factory.mktemp("ipython"))
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "perflab.magics")
    yield shell
    if not existed:
        InteractiveShell.clear_instance()
        sys.displayhook, sys.excepthook = saved[0], saved[1]
        if saved[2] is not None:
            sys.modules["__main__"] = saved[2]
    if old_dir is None:
        os.environ.pop("IPYTHONDIR", None)
    else:
        os.environ["IPYTHONDIR"] = old_dir


def test_magic_measures_the_cell_in_the_user_namespace(connection: Any, ipython: Any) -> None:
    ipython.user_ns.update(fetch_name=fetch_name, conn=connection)

    m = ipython.run_cell_magic(
        "measure", "naive loop -r 3 -w 0", "names = [fetch_name(conn, pk) for pk in (1, 2)]\nnames"
    )

    assert (m.label, m.query_count, len(m.times_ms)) == ("naive loop", 2, 3)
    assert m.result == ["row 1", "row 2"]
    assert ipython.user_ns["names"] == ["row 1", "row 2"]
    assert ipython.user_ns["_measure"] is m
    assert results.pop("naive loop") is m


def test_magic_lets_the_cell_exception_propagate(ipython: Any) -> None:
    with pytest.raises(ValueError, match="from the cell"):
        ipython.run_cell_magic("measure", "bad", "raise ValueError('from the cell')")


def test_elide_shortens_long_in_lists_and_or_chains() -> None:
    ids = ", ".join(str(i) for i in range(1, 101))
    assert elide(f'SELECT "t"."a" FROM "t" WHERE "t"."id" IN ({ids})') == (
        'SELECT ... FROM "t" WHERE "t"."id" IN (1, 2, 3, ... 100 values)'
    )
    chain = " OR ".join(f'"t"."id" = {i}' for i in (16, 14, 10, 18, 12, 2, 9))
    assert elide(f'SELECT "t"."a" FROM "t" WHERE ({chain})') == (
        'SELECT ... FROM "t" WHERE ("t"."id" = 16 OR ... 7 alternatives)'
    )
    assert elide('SELECT "t"."a" FROM "t" WHERE "t"."id" IN (1, 2)').endswith("IN (1, 2)")
    tuples = ", ".join(f"({i})" for i in (9, 13, 17, 14, 15, 20, 19))
    assert elide(f'SELECT "t"."a" FROM "t" WHERE ("t"."id") IN ({tuples})') == (
        'SELECT ... FROM "t" WHERE ("t"."id") IN ((9), (13), (17), ... 7 values)'
    )


# --- memory ------------------------------------------------------------------------------------


def test_peak_memory_charges_what_a_function_holds_at_once() -> None:
    def build_a_list() -> int:
        return len([bytearray(1000) for _ in range(2000)])  # ~2 MB alive at once

    def stream() -> int:
        return sum(len(bytearray(1000)) for _ in range(2000))  # one 1 kB object at a time

    assert peak_memory(build_a_list) > 1_500_000
    assert peak_memory(stream) < 100_000


def test_measure_with_memory_traces_an_extra_untimed_run(connection: Any) -> None:
    calls = []

    m = measure("list", lambda: calls.append(1) or [0] * 100_000, repeat=2, warmup=0, memory=True)

    assert len(calls) == 3 and len(m.times_ms) == 2
    assert m.peak_bytes is not None and m.peak_bytes > 700_000
    assert m.peak_mib == pytest.approx(m.peak_bytes / 2**20)


def test_measure_without_memory_leaves_the_peak_unknown(connection: Any) -> None:
    m = measure("plain", lambda: None, repeat=1, warmup=0)
    assert m.peak_bytes is None and str(m.peak_mib) == "nan"


def test_with_block_refuses_memory() -> None:
    with pytest.raises(PerflabError, match="memory"):
        measure("block", memory=True)


def test_compare_adds_a_memory_column_when_measured() -> None:
    a = measurement("all rows", queries=1, times_ms=[10.0])
    b = measurement("iterator", queries=1, times_ms=[12.0])
    a.peak_bytes, b.peak_bytes = 30 * 2**20, 512 * 1024

    comparison = compare(a, b, chart=False)

    assert str(comparison).splitlines()[0].endswith("peak memory")
    assert str(comparison).splitlines()[1].endswith("30.0 MiB")
    assert "<td>512.0 KiB</td>" in comparison._repr_html_()
    assert "peak memory" not in str(compare(measurement("x", queries=1, times_ms=[1.0]),
                                            chart=False))


def test_format_bytes_reads_like_a_person_writes_sizes() -> None:
    sizes = [None, 812, 3482, 12 * 2**20 + 100_000, 3 * 2**30]
    assert [format_bytes(s) for s in sizes] == ["-", "812 B", "3.4 KiB", "12.1 MiB", "3.0 GiB"]


def test_sentences_joined_with_plus_keep_every_record() -> None:
    slow = measurement("slow", queries=1, times_ms=[30.0])
    fast = measurement("fast", queries=1, times_ms=[10.0])
    faster = measurement("faster", queries=1, times_ms=[5.0])
    cmp = compare(slow, fast, faster, chart=False)

    joined = cmp.sentence("fast") + "  \n" + cmp.sentence("faster")
    both = cmp.sentences()

    assert [r["ratios"] for r in joined.records] == [{"fast": 3.0}, {"faster": 6.0}]
    assert str(both) == str(joined)
    assert both.records[0]["ratios"] == {"fast": 3.0, "faster": 6.0}


def test_a_quick_run_times_two_rounds_and_interleaves_no_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PERFLAB_QUICK", "1")
    calls = []
    slow = measure("slow", lambda: calls.append(1), repeat=9)
    assert slow.repeat == 2 and len(slow.times_ms) == 2
    before = len(calls)
    compare(slow, measure("other", lambda: None), chart=False, interleave=True)
    assert (len(calls) - before) / slow.loops == 2  # two interleaved rounds of its loops
