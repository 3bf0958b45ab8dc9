"""A streaming replica of the learner's PostgreSQL, and the shop's routers that read from it."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import perflab
from perflab import replica as replicas
from perflab import services

REPO = Path(__file__).resolve().parents[1]
needs_postgres = pytest.mark.skipif(
    not services.service_available("postgres") or replicas.ReplicaService.find_binary() is None,
    reason="PostgreSQL (with pg_basebackup) is not installed",
)


@pytest.fixture(scope="module")
def lab() -> Iterator[Any]:
    lab = perflab.setup(database="postgres", scale="tiny", quiet=True)
    yield lab
    for server in lab._replicas.values():
        server.stop()


@pytest.fixture(scope="module")
def replica(lab: Any) -> Any:
    return lab.replica()


def _review(title: str) -> Any:
    from django.contrib.auth.models import User
    from django.utils import timezone

    from shop.models import Product, Review

    return Review.objects.create(
        product=Product.objects.order_by("id").first(),
        author=User.objects.order_by("id").first(),
        rating=4, title=title, body="-", created=timezone.now(),
    )


@needs_postgres
def test_a_replica_streams_the_primary_and_refuses_writes(lab: Any, replica: Any) -> None:
    from django.db import connections, utils

    from shop.models import Product, Review

    assert replica.status()["state"] == "streaming"
    with connections["replica"].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), current_database()")
        assert cursor.fetchone() == (True, lab.database_settings["NAME"])
    assert Product.objects.using("replica").count() == Product.objects.count()
    with pytest.raises(utils.InternalError, match="read-only transaction"):
        Product.objects.using("replica").filter(pk=1).update(stock=0)
    review = _review("streamed")
    replica.catch_up()
    assert Review.objects.using("replica").filter(pk=review.pk).exists()


@needs_postgres
def test_the_same_alias_again_returns_the_running_replica(lab: Any, replica: Any) -> None:
    assert lab.replica() is replica


@needs_postgres
def test_a_delayed_replica_applies_each_commit_late(lab: Any) -> None:
    from shop.models import Review

    delayed = lab.replica("delayed", delay_ms=1500)
    try:
        review = _review("delayed")
        assert not Review.objects.using("delayed").filter(pk=review.pk).exists()
        assert delayed.catch_up() >= 1.0
        assert Review.objects.using("delayed").filter(pk=review.pk).exists()
    finally:
        delayed.stop()


@needs_postgres
def test_the_replica_lives_in_a_private_folder_removed_at_stop(lab: Any, gone: Any) -> None:
    server = lab.replica("short-lived")
    folder, pid = server.run_dir, server.pid
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "data").stat().st_mode) & 0o077 == 0
    assert server.socket_path.is_socket()
    conf = (folder / "data" / "pg_hba.conf").read_text()
    assert "host" not in conf.replace("# ", "").split()  # no TCP rule at all
    with server.connect() as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
    slots = _slots(lab)
    assert server.slot_name in slots
    server.stop()
    assert gone([pid])
    assert not folder.exists()
    assert server.slot_name not in _slots(lab)  # the primary keeps no WAL for it


def _slots(lab: Any) -> list[str]:
    from perflab.kernel import start_lab_service

    with start_lab_service("postgres").connect() as conn:
        return [row[0] for row in conn.execute("SELECT slot_name FROM pg_replication_slots")]


@needs_postgres
def test_reset_keeps_the_replica_on_the_fresh_copy(lab: Any, replica: Any) -> None:
    from django.db import connections

    fresh = lab.reset()
    assert fresh.database_settings["NAME"] != ""
    with connections["replica"].cursor() as cursor:
        cursor.execute("SELECT current_database()")
        assert cursor.fetchone() == (fresh.database_settings["NAME"],)


@needs_postgres
def test_a_killed_kernel_s_replica_stops_with_it(killed_kernel: Any) -> None:
    _, folder = killed_kernel("lab.replica()")
    assert folder.exists()  # nobody removed the copy yet
    services.reap_orphans()
    replicas.remove_stray_folders(folder.parent, older_than=0)
    assert not folder.exists()
    slot = f"perflab_replica_{folder.name.rsplit('-', 1)[-1]}"
    from perflab.kernel import start_lab_service

    primary = start_lab_service("postgres")
    with primary.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                            (slot,)).fetchone() == (1,)  # left on the primary
    replicas.drop_stray_slots(primary, folder.parent)
    with primary.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                            (slot,)).fetchone() == (0,)


def test_stray_folders_go_only_when_old_and_unrecorded(tmp_path: Path) -> None:
    old, young, other = (tmp_path / name for name in ("replica-abcdefgh", "replica-hgfedcba",
                                                      "postgres"))
    for folder in (old, young, other):
        folder.mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    os.utime(other, (time.time() - 3600, time.time() - 3600))
    replicas.remove_stray_folders(tmp_path)
    assert not old.exists() and young.exists() and other.exists()


def test_lab_replica_without_postgresql_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PERFLAB_STRICT", raising=False)
    lab = perflab.setup(scale="tiny", quiet=True)
    monkeypatch.setattr(services, "service_available", lambda name: False)
    assert lab.replica() is None
    out = capsys.readouterr().out
    assert "not installed here" in out and "apt-get install postgresql" in out
    with pytest.raises(perflab.ServiceUnavailable):
        lab.replica(strict=True)


@needs_postgres
def test_lab_replica_on_a_sqlite_lab_says_to_start_on_postgresql() -> None:
    lab = perflab.setup(scale="tiny", quiet=True)
    with pytest.raises(perflab.PerflabError, match="setup\\(database='postgres'\\)"):
        lab.replica()


# --- the shop's routers -------------------------------------------------------------------------


def test_primary_replica_router_reads_from_replicas_and_writes_to_the_primary() -> None:
    from shop.models import Product
    from shop.routers import PrimaryReplicaRouter

    router = PrimaryReplicaRouter(["a", "b"])
    assert {router.db_for_read(Product) for _ in range(200)} == {"a", "b"}
    assert router.db_for_write(Product) == "default"
    assert router.allow_relation(object(), object()) is True
    assert router.allow_migrate("default", "shop") and not router.allow_migrate("a", "shop")


def test_pinning_router_pins_a_scope_after_its_write_and_only_that_scope() -> None:
    from shop.models import Product
    from shop.routers import PinningRouter, pin_to_primary, request_scope

    router = PinningRouter(["replica"])
    router.db_for_write(Product)  # outside any scope: pins nothing
    assert router.db_for_read(Product) == "replica"
    with request_scope():
        assert router.db_for_read(Product) == "replica"
        router.db_for_write(Product)
        assert router.db_for_read(Product) == "default"
        with request_scope():  # a scope of its own (another request) is not pinned
            assert router.db_for_read(Product) == "replica"
    assert router.db_for_read(Product) == "replica"
    with pin_to_primary():
        assert router.db_for_read(Product) == "default"


def test_pin_after_write_middleware_sets_a_cookie_after_a_write_and_honours_it() -> None:
    from django.http import HttpResponse
    from django.test import RequestFactory

    from shop.models import Product
    from shop.routers import PIN_COOKIE, PIN_SECONDS, PinAfterWriteMiddleware, PinningRouter

    router = PinningRouter(["replica"])
    seen: list[str] = []

    def writes(request: Any) -> HttpResponse:
        router.db_for_write(Product)
        return HttpResponse()

    def reads(request: Any) -> HttpResponse:
        seen.append(router.db_for_read(Product))
        return HttpResponse()

    factory = RequestFactory()
    response = PinAfterWriteMiddleware(writes)(factory.post("/"))
    assert response.cookies[PIN_COOKIE]["max-age"] == PIN_SECONDS
    assert PIN_COOKIE not in PinAfterWriteMiddleware(reads)(factory.get("/")).cookies
    PinAfterWriteMiddleware(reads)(factory.get("/", headers={"Cookie": f"{PIN_COOKIE}=1"}))
    assert seen == ["replica", "default"]
