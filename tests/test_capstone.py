"""The capstone's product API (shop.capstone_views) and its lab methods (perflab.capstone)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from perflab.capstone import CacheCounts
from perflab.charts import waterfall_chart
from perflab.errors import PerflabError
from perflab.load import LoadResult

VERSIONS = {
    "naive": "/capstone/naive/products/",
    "queries": "/capstone/queries/products/",
    "keyset": "/capstone/keyset/products/",
    "plain": "/capstone/plain/products/",
    "cached": "/capstone/cached/products/",
}


def _items(lab: Any, path: str) -> list[dict[str, Any]]:
    response = lab.get(path)
    assert response.status_code == 200, response.content[:200]
    return json.loads(response.content)["results"]


def test_every_version_returns_the_same_first_page(lab) -> None:
    first = {name: _items(lab, path) for name, path in VERSIONS.items()}
    assert len(first["naive"]) == 20
    assert all(items == first["naive"] for items in first.values())
    assert set(first["naive"][0]) == {"id", "name", "slug", "price", "category", "tags",
                                      "review_count", "average_rating"}


def test_the_naive_version_sends_four_queries_per_product_and_the_fixed_ones_a_few(lab) -> None:
    counts = {name: lab.measure(name, lambda path=path: lab.get(path)).query_count
              for name, path in VERSIONS.items() if name != "cached"}
    assert counts == {"naive": 2 + 4 * 20, "queries": 3, "keyset": 2, "plain": 2}


def test_walking_the_pages_visits_every_product_once_in_each_pagination(lab) -> None:
    from shop.models import Product

    products = Product.objects.count()
    for name in ("keyset", "plain"):
        pages = lab.walk_pages(VERSIONS[name])
        assert len(pages) == math.ceil(products / 20)
        ids = [item["id"] for page in pages for item in _items(lab, page)]
        assert sorted(ids) == sorted(Product.objects.values_list("id", flat=True))
    offset = [f"{VERSIONS['queries']}?page={n}" for n in range(1, len(pages) + 1)]
    assert [i["id"] for p in offset for i in _items(lab, p)] == ids


def test_a_keyset_page_with_a_bad_cursor_is_a_400(lab) -> None:
    assert lab.get(VERSIONS["plain"] + "?before=yesterday").status_code == 400
    assert lab.get(VERSIONS["cached"] + "?before=2025-01-01T00:00:00_x").status_code == 400


def test_the_ceiling_sends_the_same_bytes_every_time(lab) -> None:
    first = lab.get("/capstone/bytes/").content
    assert json.loads(first)["results"] == _items(lab, VERSIONS["plain"])
    with lab.measure("bytes") as m:
        assert lab.get("/capstone/bytes/").content == first
    assert m.query_count == 0


def test_walk_pages_stops_at_a_page_that_fails(lab) -> None:
    with pytest.raises(PerflabError, match="404"):
        lab.walk_pages("/capstone/no-such-version/")


def test_cache_counts_subtract_into_a_hit_rate() -> None:
    counts = CacheCounts(hits=90, misses=20) - CacheCounts(hits=10, misses=0)
    assert counts == CacheCounts(80, 20) and counts.hit_rate == 0.8
    assert CacheCounts(0, 0).hit_rate == 0.0


@pytest.mark.services
def test_the_worker_cache_is_a_real_memcached_whose_misses_are_counted(lab) -> None:
    from pymemcache.client.base import Client

    cache = lab.worker_cache(strict=True)
    assert cache is not None and "capstone" in cache.settings["CACHES"]
    cache.clear()
    before = cache.counts()
    client = Client(cache.backend["LOCATION"].removeprefix("unix:"))
    client.set("page", b"x")
    client.get("page")
    client.get("absent")
    client.close()
    assert cache.counts() - before == CacheCounts(hits=1, misses=1)


def _result(label: str, rps: float) -> LoadResult:
    return LoadResult(label=label, users=1, duration_s=1, requests=int(rps), failures=0,
                      rps=rps, p50_ms=1, p95_ms=2, p99_ms=3, generator_cpu=0.1,
                      server_cpu=1.0)


def test_the_waterfall_needs_the_same_steps_at_every_scale() -> None:
    small = [_result("1 naive", 10), _result("2 fixed", 100)]
    fig = waterfall_chart({"small": small, "default": small},
                          {"small": _result("bytes", 500)}, title="t")
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["1 naive", "2 fixed"]
    with pytest.raises(ValueError, match="same steps"):
        waterfall_chart({"small": small, "default": small[:1]}, {}, title="t")
