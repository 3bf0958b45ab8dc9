"""Recorded figures: kept with where and when they came from, checked by counts, never verified."""

from __future__ import annotations

import json

import pytest

import perflab
from perflab import recorded, verify
from perflab.errors import PerflabError


@pytest.fixture
def lab(tmp_path, monkeypatch):
    monkeypatch.setattr(recorded, "RECORDED_DIR", tmp_path / "recorded")
    return perflab.setup(scale="tiny", quiet=True)


def _two(lab):
    from shop.models import Product

    loop = lab.measure("loop", lambda: [p.category.name for p in Product.objects.all()[:5]])
    joined = lab.measure(
        "joined", lambda: [p.category.name for p in Product.objects.select_related("category")[:5]]
    )
    return loop, joined


def test_record_writes_only_when_asked_and_shows_where_it_came_from(lab, monkeypatch) -> None:
    loop, joined = _two(lab)
    with pytest.raises(PerflabError, match="No recorded figures named 'demo'"):
        lab.record("demo", loop, joined, title="Demo")
    monkeypatch.setenv("PERFLAB_RECORD", "1")
    lab.record("demo", loop, joined, title="Demo")
    data = json.loads((recorded.RECORDED_DIR / "demo.json").read_text())
    assert [m["query_count"] for m in data["measurements"]] == [6, 1]
    assert {"date", "django", "python", "machine", "cpus", "scale"} <= set(data["source"])
    shown = lab.recorded("demo")
    bundle, metadata = shown._repr_mimebundle_()
    assert "(recorded)" in bundle["text/plain"] and "not this run's figures" in bundle["text/plain"]
    assert "5 similar" in bundle["text/plain"]
    assert metadata["perflab"][0]["recorded"] is True


def test_a_live_run_checks_its_counts_against_the_record(lab, monkeypatch) -> None:
    loop, joined = _two(lab)
    monkeypatch.setenv("PERFLAB_RECORD", "1")
    lab.record("demo", loop, joined, title="Demo")
    monkeypatch.delenv("PERFLAB_RECORD")
    assert lab.record("demo", loop, joined, title="Demo").name == "demo"  # same counts: fine
    with pytest.raises(PerflabError, match="no longer match"):
        lab.record("demo", joined, joined, title="Demo")


def test_record_names_are_checked(lab) -> None:
    with pytest.raises(PerflabError, match="lowercase letters"):
        lab.recorded("../etc/passwd")


def test_verify_leaves_recorded_figures_out() -> None:
    notebook = {"cells": [{"cell_type": "code", "outputs": [{"metadata": {"perflab": [
        {"recorded": True, "name": "demo", "source": {}},
        {"comparison": "c", "baseline": "a", "ratios": {"b": 2.0}, "tolerance": 0.3},
    ]}}]}]}
    assert list(verify.ratio_records(notebook).values()) == [(2.0, 0.3)]
