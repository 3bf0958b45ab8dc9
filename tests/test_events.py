"""Lesson 11's events database: its own alias, filled inside PostgreSQL, pruned, dropped at exit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import perflab
from perflab import events_db, kernel, services
from perflab.errors import ServiceUnavailable
from perflab.explain import Explain
from perflab.seed import SCALES

JUNE, JULY = datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)


@pytest.fixture
def events(lab):
    """Return a filled events database at the tiny scale (15,000 rows a table)."""
    database = lab.events_database(strict=True)
    database.fill()
    return database


def test_the_router_keeps_the_events_on_their_alias_and_nothing_else_there(lab) -> None:
    from django.db import router

    from events.models import Event
    from shop.models import Review

    assert router.db_for_read(Event) == router.db_for_write(Event) == "events"
    assert router.db_for_read(Review) == "default"
    assert router.allow_migrate("events", "events") is True
    assert router.allow_migrate("default", "events") is False
    assert router.allow_migrate("events", "shop") is False


def test_the_shop_database_has_no_events_tables(lab) -> None:
    from django.db import connection

    assert not any(t.startswith("events_") for t in connection.introspection.table_names())


def test_events_grow_with_the_scale() -> None:
    assert events_db.events_for(SCALES["small"]) == 1_000_000
    assert events_db.events_for(SCALES["default"]) == 10_000_000


def test_tables_read_lists_the_partitions_a_plan_scans() -> None:
    text = (
        "Append  (cost=0.00..2.00 rows=2 width=8) (actual time=0.01..0.02 rows=2 loops=1)\n"
        "  ->  Seq Scan on events_partitionedevent_2025_jun events_partitionedevent_1  (cost=..)\n"
        "  ->  Index Scan using e_jul_idx on events_partitionedevent_2025_jul e_2  (cost=..)\n"
        "Planning Time: 0.1 ms\n"
    )
    plan = Explain(text=text, vendor="postgresql", analyze=True)
    assert events_db.EventsDatabase.tables_read(plan) == [
        "events_partitionedevent_2025_jun", "events_partitionedevent_2025_jul",
    ]


def test_without_postgres_the_lab_says_so_and_returns_none(lab, monkeypatch, capsys) -> None:
    def missing(*args: object, **kwargs: object) -> None:
        raise ServiceUnavailable("postgres is not installed. Install: apt-get install postgresql")

    monkeypatch.setattr(kernel, "_services", {})
    monkeypatch.setattr("perflab.shared_postgres.attach", missing)
    monkeypatch.setattr(services, "start_service", missing)
    monkeypatch.setenv("PERFLAB_STRICT", "0")
    assert lab.events_database() is None
    assert "apt-get install postgresql" in capsys.readouterr().out
    with pytest.raises(ServiceUnavailable):
        lab.events_database(strict=True)


@pytest.mark.services
def test_both_tables_get_the_same_rows_and_the_partitioned_one_a_partition_a_month(
    events,
) -> None:
    from events.models import Event, PartitionedEvent

    assert Event.objects.count() == PartitionedEvent.objects.count() == events.rows == 15_000
    assert list(Event.objects.order_by("created").values_list("created", "user_id", "kind")[:50]) \
        == list(PartitionedEvent.objects.order_by("created")
                .values_list("created", "user_id", "kind")[:50])
    names = [p.name for p in events.partitions()]
    assert names[0] == "events_partitionedevent_2025_jan"
    assert names[-1] == "events_partitionedevent_2025_dec" and len(names) == 12
    assert events.size("events_event") > 0 and events.size("events_partitionedevent") > 0
    assert set(events.build_seconds) == set(events_db.TABLES)


@pytest.mark.services
def test_a_month_query_reads_its_partition_alone(lab, events) -> None:
    from events.models import Event, PartitionedEvent

    month = {"created__gte": JUNE, "created__lt": JULY}
    assert events.tables_read(lab.explain(PartitionedEvent.objects.filter(**month))) == [
        "events_partitionedevent_2025_jun"
    ]
    assert events.tables_read(lab.explain(Event.objects.filter(**month))) == ["events_event"]
    everything = events.tables_read(lab.explain(PartitionedEvent.objects.filter(user_id=42)))
    assert len(everything) == 12


@pytest.mark.services
def test_the_events_alias_survives_the_lab_moving_to_another_database(events) -> None:
    from events.models import Event

    perflab.setup(scale="tiny", quiet=True)  # the default alias moves to a fresh copy
    assert Event.objects.count() == events.rows


@pytest.mark.services
def test_asking_again_starts_from_empty_tables(lab, events) -> None:
    from events.models import Event

    again = lab.events_database(strict=True)
    assert again.dbname == events.dbname
    assert Event.objects.count() == 0


@pytest.mark.services
def test_the_events_database_is_dropped_when_the_kernel_lets_go(lab) -> None:
    database = lab.events_database(strict=True)
    assert database.server.database_exists(database.dbname)
    kernel.release()
    assert not database.server.database_exists(database.dbname)


@pytest.mark.services
def test_events_databases_of_dead_kernels_are_dropped(lab) -> None:
    server = kernel.start_lab_service("postgres", strict=True)
    server.create_database("perflab_lab_events_old_notebook_999999")  # no process has this pid
    lab.events_database(strict=True)
    assert not server.database_exists("perflab_lab_events_old_notebook_999999")


@pytest.mark.services
def test_a_disk_without_room_for_the_tables_is_refused_before_any_row(lab, monkeypatch) -> None:
    from collections import namedtuple

    from events.models import Event
    from perflab.errors import DiskFull

    database = lab.events_database(strict=True)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(events_db.shutil, "disk_usage", lambda path: usage(10, 9, 1))
    with pytest.raises(DiskFull, match="PERFLAB_SCALE=small"):
        database.fill()
    assert Event.objects.count() == 0
