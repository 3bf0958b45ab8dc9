"""compare_loads: load results side by side, with throughput ratios perflab verify reads."""

from __future__ import annotations

import pytest

from perflab import UnknownChoice
from perflab.load import LoadResult
from perflab.load_compare import compare_loads
from perflab.verify import ratio_records


def result(label: str, rps: float, *, p95_ms: float = 100.0, generator_cpu: float = 0.1
           ) -> LoadResult:
    return LoadResult(label=label, users=10, duration_s=5.0, requests=int(rps * 5), failures=0,
                      rps=rps, p50_ms=p95_ms / 2, p95_ms=p95_ms, p99_ms=p95_ms * 2,
                      generator_cpu=generator_cpu, server_cpu=1.0)


def test_throughput_ratios_are_against_the_first_result_by_default() -> None:
    one, two = result("1 sync worker", 10.0), result("2 sync workers", 25.0)
    comparison = compare_loads(one, two, title="GET /")
    assert comparison.ratio("2 sync workers") == pytest.approx(2.5)
    assert comparison.record() == {
        "comparison": "GET /", "baseline": "1 sync worker",
        "ratios": {"2 sync workers": 2.5}, "tolerance": 0.3,
    }
    assert compare_loads(one, two, baseline="2 sync workers").ratio(one) == pytest.approx(0.4)


def test_the_table_carries_its_ratios_for_verify() -> None:
    comparison = compare_loads(result("a", 10.0), result("b", 5.0, generator_cpu=0.95),
                               title="t", tolerance=0.4)
    data, metadata = comparison._repr_mimebundle_()
    assert "2\u00d7 fewer" in data["text/plain"] and "generator saturated" in data["text/html"]
    notebook = {"cells": [{"outputs": [{"metadata": metadata}]}]}
    assert ratio_records(notebook) == {(0, "t", "b"): (0.5, 0.4)}


def test_sentences_say_more_or_fewer_requests_and_carry_their_ratio() -> None:
    comparison = compare_loads(result("1 worker", 10.0), result("5 workers", 48.0),
                               result("slow", 10.2))
    assert comparison.sentence("5 workers").startswith(
        "5 workers served about 4.8 times the requests a second of 1 worker (10 → 48")
    assert "about as many requests a second as" in comparison.sentence("slow")
    assert comparison.sentence("5 workers").records[0]["ratios"] == {"5 workers": 4.8}


def test_an_unknown_label_lists_the_known_ones() -> None:
    with pytest.raises(UnknownChoice, match="1 worker"):
        compare_loads(result("1 worker", 10.0)).ratio("nope")


def test_unsteady_results_are_marked_and_their_ratios_not_recorded() -> None:
    comparison = compare_loads(result("1 worker", 10.0), result("5 workers", 48.0),
                               result("lucky", 30.0), unsteady=["lucky"])
    assert comparison.record()["ratios"] == {"5 workers": 4.8}
    assert "3\u00d7 more (unsteady)" in str(comparison)
    assert comparison.sentence("lucky").records == []
    with pytest.raises(UnknownChoice):
        compare_loads(result("1 worker", 10.0), unsteady=["typo"])


def test_the_table_says_why_requests_failed_and_nothing_when_none_did() -> None:
    from dataclasses import replace

    clean = result("DRF", 100.0)
    failing = replace(result("FastAPI", 400.0), failures=3,
                      errors=("3 x GET /top/: HTTPError('500 Server Error')",))
    assert "failed:" not in str(compare_loads(clean, result("Ninja", 120.0)))
    comparison = compare_loads(clean, failing)
    assert comparison.failure_lines() == ["FastAPI: 3 x GET /top/: HTTPError('500 Server Error')"]
    assert str(comparison).endswith("\n  failed: FastAPI: 3 x GET /top/: "
                                    "HTTPError('500 Server Error')")
    assert "<p>failed: FastAPI: 3 x GET /top/: HTTPError(&#x27;500" in comparison._repr_html_()
