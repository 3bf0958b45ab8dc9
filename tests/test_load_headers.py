"""Load tests that send request headers: every request carries them (lesson 21's 304s)."""

from __future__ import annotations

from typing import Any

import pytest

from perflab.load import run_load

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def served(lab: Any) -> Any:
    server = lab.serve(workers=1)
    yield server
    server.stop()


def _etag_page(lab: Any, server: Any) -> tuple[str, str]:
    """Return the product page that answers 304 to its ETag, and that ETag."""
    import httpx

    from shop.models import Product

    path = f"/http/products/{Product.objects.order_by('id').first().slug}/etag/"
    return path, httpx.get(server.url + path, timeout=10).headers["ETag"]


def test_every_request_of_a_load_test_carries_the_headers(lab: Any, served: Any) -> None:
    path, _ = _etag_page(lab, served)
    # A GET whose If-Match names another version fails (412): the header reached each request.
    refused = run_load(served, [path], users=2, duration_s=1, warmup_s=0,
                       headers={"If-Match": '"another-version"'})
    assert refused.requests > 0 and refused.failures == refused.requests
    # ...and the result says why each failed, counted as Locust counted them.
    assert len(refused.errors) == 1 and "412" in refused.errors[0]
    assert refused.errors[0].startswith(f"{refused.failures:,} x GET {path}: ")
    assert "Failures: " in refused.summary()


def test_a_304_counts_as_an_answer_not_a_failure(lab: Any, served: Any) -> None:
    path, tag = _etag_page(lab, served)
    plain = run_load(served, [path], users=2, duration_s=1, warmup_s=0)
    revalidated = run_load(served, [path], users=2, duration_s=1, warmup_s=0,
                           headers={"If-None-Match": tag})
    assert plain.failures == 0 and revalidated.failures == 0
    assert plain.errors == revalidated.errors == ()
    assert revalidated.requests > 0
