"""PgBouncer in front of the learner's PostgreSQL, and the lab's connection counts and limits."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import perflab
from perflab import pgbouncer as pgbouncers
from perflab import replica as replicas
from perflab import services
from perflab.accounts import account_named, is_root
from perflab.postgres import APP_ROLE

REPO = Path(__file__).resolve().parents[1]
needs_pgbouncer = pytest.mark.skipif(
    not services.service_available("postgres") or not pgbouncers.PgBouncerService.available(),
    reason="PostgreSQL or PgBouncer is not installed",
)


@pytest.fixture(scope="module")
def lab() -> Iterator[Any]:
    yield perflab.setup(database="postgres", scale="tiny", quiet=True)


@pytest.fixture(scope="module")
def bouncer(lab: Any) -> Iterator[Any]:
    server = lab.pgbouncer(pool_size=2, strict=True)
    lab.add_database("bouncer", server.database)
    yield server
    server.stop()


@needs_pgbouncer
def test_django_queries_through_pgbouncer_in_transaction_mode(lab: Any, bouncer: Any) -> None:
    from django.db import connections

    from shop.models import Product

    with connections["bouncer"].cursor() as cursor:
        cursor.execute("SELECT current_user, current_database()")
        assert cursor.fetchone() == (APP_ROLE, lab.database_settings["NAME"])
    assert Product.objects.using("bouncer").count() == Product.objects.count()
    assert sum(1 for _ in Product.objects.using("bouncer").iterator(chunk_size=7)) > 7
    pools = {row["database"]: row for row in bouncer.show("pools")}
    assert pools[lab.database_settings["NAME"]]["pool_mode"] == "transaction"
    assert bouncer.database["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert bouncer.settings == {"DATABASES": {"default": bouncer.database}}


@needs_pgbouncer
def test_pgbouncer_listens_on_a_private_socket_only(bouncer: Any) -> None:
    assert stat.S_IMODE(bouncer.run_dir.stat().st_mode) == 0o700
    assert bouncer.socket_path.is_socket()
    assert stat.S_IMODE(bouncer.socket_path.stat().st_mode) & 0o077 == 0
    config = (bouncer.run_dir / "pgbouncer.ini").read_text()
    assert "listen_addr =\n" in config  # no TCP at all
    assert (bouncer.run_dir / "hba.conf").read_text().splitlines() == [
        f"local all {bouncer.user} peer", "local all all reject"]


@needs_pgbouncer
@pytest.mark.skipif(not is_root() or account_named("learner") is None or not shutil.which("psql"),
                    reason="needs root, a 'learner' account and psql")
def test_pgbouncer_refuses_another_os_user(bouncer: Any) -> None:
    def as_learner(user: str, dbname: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "learner", "--", "psql", "-h", bouncer.host, "-p",
             str(bouncer.port), "-U", user, "-d", dbname, "-Atc", "SELECT 1"],
            capture_output=True, text=True, timeout=30, check=False, cwd="/",
        )

    refused = as_learner(bouncer.user, "pgbouncer")
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    # Past the folders' and the socket's modes, PgBouncer's own peer check refuses too.
    opened = [bouncer.run_dir.parent, bouncer.run_dir, bouncer.socket_path]
    modes = [path.stat().st_mode for path in opened]
    for path in opened:
        os.chmod(path, 0o777 if path == bouncer.socket_path else 0o711)
    try:
        for user, dbname in [(bouncer.user, "pgbouncer"), ("learner", "pgbouncer"),
                             (bouncer.user, "postgres"), ("learner", "postgres")]:
            result = as_learner(user, dbname)
            assert result.returncode != 0, (user, dbname, result.stdout)
            assert "login rejected" in result.stderr, (user, dbname, result.stderr)
    finally:
        for path, mode in zip(opened, modes, strict=True):
            os.chmod(path, stat.S_IMODE(mode))


@needs_pgbouncer
def test_watch_counts_a_connection_per_connect_and_none_for_a_reused_one(lab: Any) -> None:
    from django.db import connections

    app = lab.app_database()
    lab.add_database("app", app)
    with lab.watch_connections() as fresh:
        for _ in range(3):
            with connections["app"].cursor() as cursor:
                cursor.execute("SELECT 1")
            connections["app"].close()
    with connections["app"].cursor() as cursor:
        cursor.execute("SELECT 1")
    with lab.watch_connections() as reused:
        for _ in range(3):
            with connections["app"].cursor() as cursor:
                cursor.execute("SELECT 1")
    connections["app"].close()
    assert fresh.opened == 3
    assert reused.opened == 0 and reused.peak >= 1


@needs_pgbouncer
def test_connection_limit_holds_the_app_role_back_and_is_reset(lab: Any) -> None:
    import psycopg

    name = lab.database_settings["NAME"]
    from perflab.kernel import start_lab_service

    server = start_lab_service("postgres")

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(host=server.host, port=server.port, user=APP_ROLE, dbname=name)

    from django.db import connections

    lab.app_database()
    connections.close_all()  # as connection_limit() does
    with lab.watch_connections() as watch:
        others = watch.open_now()  # PgBouncer's, say: they count against the limit too
    refused = pytest.raises(psycopg.OperationalError, match="too many connections")
    with lab.connection_limit(others + 1), connect(), refused:
        connect()
    with connect(), connect():
        pass  # no limit any more
    with server.connect() as conn:
        limit = conn.execute("SELECT datconnlimit FROM pg_database WHERE datname = %s",
                             (name,)).fetchone()
    assert limit == (-1,)


@needs_pgbouncer
def test_pgbouncer_stops_and_removes_its_folder(lab: Any, gone: Any) -> None:
    server = lab.pgbouncer(pool_mode="session", pool_size=1, strict=True)
    folder, pid = server.run_dir, server.pid
    assert server.running and folder.is_dir()
    server.stop()
    assert gone([pid])
    assert not folder.exists()
    server.stop()  # twice is fine


@needs_pgbouncer
def test_a_killed_kernel_s_pgbouncer_stops_and_is_cleaned_up(killed_kernel: Any) -> None:
    pid, folder = killed_kernel("lab.pgbouncer()")
    services.reap_orphans()  # forgets its record (and its folder, in the runtime folder)
    replicas.remove_stray_folders(folder.parent, older_than=0, pattern=pgbouncers.FOLDER)
    assert not folder.exists()
    assert pid not in services.find_orphans()


def test_lab_pgbouncer_without_the_binary_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PERFLAB_STRICT", raising=False)
    lab = perflab.setup(scale="tiny", quiet=True)
    monkeypatch.setattr(pgbouncers.PgBouncerService, "find_binary", classmethod(lambda cls: None))
    assert lab.pgbouncer() is None
    out = capsys.readouterr().out
    assert "pgbouncer is not available" in out and "apt-get install pgbouncer" in out
    assert "conda install -c conda-forge pgbouncer" in out
    with pytest.raises(perflab.ServiceUnavailable):
        lab.pgbouncer(strict=True)


def test_pgbouncer_is_found_in_sbin_when_not_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgbouncers.shutil, "which", lambda name: None)
    monkeypatch.setattr(pgbouncers, "_SEARCHED", ("/nonexistent/pgbouncer", sys.executable))
    assert pgbouncers.PgBouncerService.find_binary() == sys.executable


def test_connection_methods_need_a_postgresql_lab() -> None:
    lab = perflab.setup(scale="tiny", quiet=True)
    with pytest.raises(perflab.PerflabError, match="setup\\(database='postgres'\\)"):
        lab.app_database()


@pytest.mark.skipif(not services.service_available("postgres"), reason="no PostgreSQL")
def test_a_server_with_older_access_rules_lets_the_app_role_in_without_a_restart(
    lab: Any,
) -> None:
    import time

    import psycopg

    from perflab.db_connections import ensure_app_role
    from perflab.kernel import start_lab_service
    from perflab.postgres import postgres_home

    server = start_lab_service("postgres")
    name = lab.database_settings["NAME"]
    ident = postgres_home() / "data" / "pg_ident.conf"
    older = "".join(line for line in ident.read_text().splitlines(True) if APP_ROLE not in line)

    def app_role_logs_in() -> bool:
        try:
            psycopg.connect(host=server.host, port=server.port, user=APP_ROLE,
                            dbname="postgres").close()
        except psycopg.OperationalError:
            return False
        return True

    with server.connect() as conn:
        started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
        ident.write_text(older)  # the rules an older perflab wrote: no mapping for APP_ROLE
        conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 5
    while app_role_logs_in() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not app_role_logs_in()

    ensure_app_role(server, name)

    assert app_role_logs_in()
    with server.connect() as conn:
        assert conn.execute("SELECT pg_postmaster_start_time()").fetchone() == started
