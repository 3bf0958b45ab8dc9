"""Lesson 10's search engine: a private Whoosh index per database copy, built by haystack."""

from __future__ import annotations

import importlib.util
import stat
from pathlib import Path

import pytest

import perflab
from perflab.search import SearchIndexFolder

# Not importorskip: importing haystack reads Django's settings, which setup() configures.
pytestmark = pytest.mark.skipif(
    not (importlib.util.find_spec("haystack") and importlib.util.find_spec("whoosh")),
    reason="django-haystack and Whoosh are not installed",
)


@pytest.fixture
def lab():
    return perflab.setup(scale="tiny", quiet=True)


def _haystack_path() -> str:
    from haystack import connections

    return connections.connections_info["default"]["PATH"]


def test_each_database_copy_gets_its_own_private_whoosh_folder(lab) -> None:
    first = lab.whoosh_index()
    assert _haystack_path() == str(first.path)
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o700
    assert first.path.is_relative_to(perflab.paths.state_root())  # never in the repository
    with lab.using(scale="small"):
        other = lab.whoosh_index()
        assert other.path != first.path and _haystack_path() == str(other.path)
    assert lab.whoosh_index().path == first.path  # asked again: the same folder, kept


def test_a_built_index_holds_every_product_and_finds_them_by_word(lab) -> None:
    from django.core.management import call_command
    from haystack.query import SearchQuerySet

    from shop.models import Product

    index = lab.whoosh_index()
    call_command("rebuild_index", interactive=False, batchsize=10_000, verbosity=0)
    assert SearchQuerySet().count() == Product.objects.count()
    assert index.bytes > 0
    product = Product.objects.order_by("id").first()
    noun = product.name.split()[1]  # "Zen Teapot 1": the seeded names' second word is a noun
    names = [result.name for result in SearchQuerySet().auto_query(noun)]
    assert product.name in names and all(noun in name for name in names)
    assert lab.whoosh_index().bytes == index.bytes  # asking again does not empty it


def test_an_index_folder_counts_the_bytes_of_every_file_in_it(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 5)
    assert SearchIndexFolder(tmp_path).bytes == 15
