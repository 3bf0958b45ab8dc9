"""setup(): an isolated, seeded database per call; clear errors for every bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import perflab
from perflab import databases, kernel, services
from perflab.errors import ServiceUnavailable, UnknownChoice

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def missing_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every server look uninstalled, as on a machine without them."""

    def missing(name: str, **kwargs: object) -> None:
        raise ServiceUnavailable(f"{name} is not installed. Install it: apt-get install {name}")

    monkeypatch.setattr(services, "start_service", missing)
    monkeypatch.setattr(services, "service_available", lambda name: False)
    monkeypatch.setattr(kernel, "_services", {})


def test_setup_configures_django_for_notebooks(lab) -> None:
    from django.conf import settings

    assert os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] == "true"
    assert settings.DATABASES["default"]["NAME"] == lab.database_settings["NAME"]
    assert "debug_toolbar" not in settings.INSTALLED_APPS


def test_each_setup_gives_a_fresh_copy_of_the_template(lab) -> None:
    from shop.models import Review

    Review.objects.filter(rating=5).delete()
    assert not Review.objects.filter(rating=5).exists()
    fresh = perflab.setup(scale="tiny", quiet=True)
    assert Review.objects.filter(rating=5).exists()
    assert fresh.database_settings["NAME"] == lab.database_settings["NAME"]


def test_second_setup_copies_instead_of_building(lab) -> None:
    again = perflab.setup(scale="tiny", quiet=True)
    assert again.built_template is False


def test_setup_can_switch_scale_in_one_kernel(lab) -> None:
    small = perflab.setup(scale="small", quiet=True)
    try:
        assert small.counts()["shop_product"] == perflab.SCALES["small"].products
    finally:
        perflab.setup(scale="tiny", quiet=True)
    assert lab.counts()["shop_product"] == perflab.SCALES["tiny"].products


def test_setup_rejects_an_unknown_scale() -> None:
    with pytest.raises(UnknownChoice, match="Unknown scale 'medium'"):
        perflab.setup(scale="medium")


def test_setup_rejects_an_unknown_database() -> None:
    with pytest.raises(UnknownChoice, match=r"Unknown database 'mysql'.*'sqlite', 'postgres'"):
        perflab.setup(database="mysql")


def test_setup_rejects_an_unknown_cache() -> None:
    with pytest.raises(UnknownChoice, match="Unknown cache 'memcache'"):
        perflab.setup(cache="memcache")


def test_scale_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFLAB_SCALE", "nope")
    with pytest.raises(UnknownChoice, match="Unknown scale 'nope'"):
        perflab.setup()


def test_template_is_rebuilt_when_the_schema_changes(lab, monkeypatch) -> None:
    monkeypatch.setattr(databases, "schema_version", lambda: "changed-schema")
    rebuilt = perflab.setup(scale="tiny", quiet=True)
    assert rebuilt.built_template is True
    assert "changed-schema" in rebuilt.template
    monkeypatch.undo()
    perflab.setup(scale="tiny", quiet=True)


def test_a_corrupt_template_is_rebuilt(lab) -> None:
    template, _ = databases.sqlite_template(perflab.SCALES["tiny"])
    template.write_bytes(b"not a database")
    again = perflab.setup(scale="tiny", quiet=True)
    assert again.built_template is True
    assert again.counts()["shop_review"] == perflab.SCALES["tiny"].reviews


def test_models_without_a_migration_stop_setup_with_what_to_run(tmp_path: Path) -> None:
    script = (
        "import perflab, perflab.django_setup as d\n"
        "d.configure_django()\n"
        "from django.db import models\n"
        "from shop.models import Review\n"
        "models.IntegerField(default=0).contribute_to_class(Review, 'helpful_votes')\n"
        "try:\n"
        "    perflab.setup(scale='tiny', quiet=True)\n"
        "except perflab.StaleSchema as exc:\n"
        "    print('STALE', exc)\n"
    )
    env = {**os.environ, "PERFLAB_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert "STALE" in out.stdout, out.stderr
    assert "makemigrations" in out.stdout


def test_lab_files_of_dead_kernels_are_removed(lab) -> None:
    labs = Path(lab.database_settings["NAME"]).parent
    orphan = labs / "old-notebook-999999.sqlite3"  # no process has this pid
    orphan.write_bytes(b"")
    perflab.setup(scale="tiny", quiet=True)
    assert not orphan.exists()


def test_sql_url_reaches_the_same_database(lab) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(lab.sql_url)
    with engine.connect() as conn:
        count = conn.execute(sqlalchemy.text("SELECT COUNT(*) FROM shop_review")).scalar()
    engine.dispose()
    assert count == lab.counts()["shop_review"]


def test_ipython_sql_magic_runs_against_the_lab(lab) -> None:
    # ipython-sql 0.5.0 breaks on prettytable 3.12+ (KeyError: 'DEFAULT'): this guards the pin.
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "sql")
    shell.run_line_magic("config", "SqlMagic.displaylimit = 5")
    result = shell.run_line_magic("sql", f"{lab.sql_url} SELECT COUNT(*) AS n FROM shop_product")
    assert next(iter(result))[0] == lab.counts()["shop_product"]
    assert "n" in str(result)  # renders through prettytable without KeyError


def test_missing_postgres_falls_back_to_sqlite_with_a_note(missing_servers, monkeypatch) -> None:
    monkeypatch.setenv("PERFLAB_STRICT", "0")
    fallback = perflab.setup(database="postgres", scale="tiny", quiet=True)
    assert fallback.database == "sqlite"
    assert any("SQLite instead" in note for note in fallback.notes)


def test_missing_postgres_is_an_error_in_strict_mode(missing_servers, monkeypatch) -> None:
    monkeypatch.setenv("PERFLAB_STRICT", "1")
    with pytest.raises(ServiceUnavailable):
        perflab.setup(database="postgres", scale="tiny", quiet=True)


def test_lab_service_prints_the_install_line_when_missing(
    missing_servers, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("PERFLAB_STRICT", "0")
    assert kernel.start_lab_service("memcached") is None
    assert "apt-get install memcached" in capsys.readouterr().out


@pytest.mark.services
def test_postgres_lab_holds_the_same_rows_as_sqlite(lab) -> None:
    sqlite_counts = lab.counts()
    pg = perflab.setup(database="postgres", scale="tiny", quiet=True)
    try:
        assert pg.vendor == "postgresql"
        assert pg.counts() == sqlite_counts
        from shop.models import Review

        first = Review.objects.order_by("id").values_list("title", "rating", "created").first()
    finally:
        perflab.setup(scale="tiny", quiet=True)
    assert Review.objects.order_by("id").values_list("title", "rating", "created").first() == first


@pytest.mark.services
@pytest.mark.parametrize("backend", ["memcached", "redis"])
def test_setup_caches_in_a_real_server(backend: str) -> None:
    from django.core.cache import cache

    lab = perflab.setup(scale="tiny", cache=backend, quiet=True)
    try:
        assert lab.cache == backend
        cache.set("greeting", "hello", 30)
        assert cache.get("greeting") == "hello"
    finally:
        perflab.setup(scale="tiny", quiet=True)


def test_missing_cache_server_falls_back_to_local_memory(missing_servers, monkeypatch) -> None:
    monkeypatch.setenv("PERFLAB_STRICT", "0")
    lab = perflab.setup(scale="tiny", cache="memcached", quiet=True)
    assert lab.cache == "locmem"
    assert any("memcached is not installed" in note for note in lab.notes)
    monkeypatch.setenv("PERFLAB_STRICT", "1")
    with pytest.raises(ServiceUnavailable):
        perflab.setup(scale="tiny", cache="memcached", quiet=True)


def test_a_kernel_removes_its_lab_files_when_it_exits(tmp_path: Path) -> None:
    script = (
        "import perflab\n"
        "lab = perflab.setup(scale='tiny', cache='file', quiet=True)\n"
        "print(lab.database_settings['NAME'])\n"
    )
    env = {**os.environ, "PERFLAB_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120, check=True)
    assert Path(out.stdout.strip()).name.endswith(".sqlite3")
    assert not Path(out.stdout.strip()).exists()
    assert list((tmp_path / "caches").iterdir()) == []


@pytest.mark.services
def test_postgres_copies_of_dead_kernels_are_dropped(lab) -> None:
    server = kernel.start_lab_service("postgres", strict=True)
    server.create_database("perflab_lab_old_notebook_999999")  # no process has this pid
    perflab.setup(database="postgres", scale="tiny", quiet=True)
    try:
        assert not server.database_exists("perflab_lab_old_notebook_999999")
    finally:
        perflab.setup(scale="tiny", quiet=True)


@pytest.mark.services
def test_postgres_lab_starts_with_planner_statistics(lab) -> None:
    pg = perflab.setup(database="postgres", scale="tiny", quiet=True)
    try:
        from django.db import connection

        assert pg.vendor == "postgresql"
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'shop_review'")
            assert cursor.fetchone()[0] > 0
    finally:
        perflab.setup(scale="tiny", quiet=True)


def test_use_caches_sets_backends_side_by_side(lab) -> None:
    from django.core.cache import caches

    named = lab.use_caches("locmem", "file", "db")
    try:
        assert set(named) == {"locmem", "file", "db"}
        for alias, cache in named.items():
            cache.set("k", alias, 30)
        assert [caches[a].get("k") for a in ("locmem", "file", "db")] == ["locmem", "file", "db"]
        assert caches["default"].get("k") is None  # the lab's own cache is untouched
    finally:
        perflab.setup(scale="tiny", quiet=True)


def test_use_caches_rejects_an_unknown_backend(lab) -> None:
    with pytest.raises(UnknownChoice, match="Unknown cache 'memcache'"):
        lab.use_caches("memcache")


def test_use_caches_leaves_out_a_missing_server(lab, missing_servers, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PERFLAB_STRICT", "0")
    try:
        assert set(lab.use_caches("locmem", "redis")) == {"locmem"}
        assert "redis is not installed" in capsys.readouterr().out
    finally:
        perflab.setup(scale="tiny", quiet=True)


@pytest.mark.services
def test_use_caches_reaches_real_memcached_and_redis(lab) -> None:
    named = lab.use_caches("memcached", "redis")
    try:
        for alias, cache in named.items():
            cache.set("k", alias, 30)
            assert cache.get("k") == alias
    finally:
        perflab.setup(scale="tiny", quiet=True)


def test_reset_keeps_the_cache_aliases_it_had(lab) -> None:
    from django.core.cache import caches

    try:
        lab.use_caches("locmem", "file")
        caches["file"].set("k", "v", 30)
        fresh = lab.reset()
        assert fresh.cache_aliases == ("locmem", "file")
        assert caches["file"].get("k") is None  # a fresh folder: nothing cached survives
        caches["file"].set("k", "again", 30)
        assert caches["file"].get("k") == "again"
    finally:
        perflab.setup(scale="tiny", quiet=True)


def test_setup_starts_with_an_empty_cache(lab) -> None:
    from django.core.cache import cache

    cache.set("left-over", "from an earlier run", 300)
    perflab.setup(scale="tiny", quiet=True)
    assert cache.get("left-over") is None


@pytest.mark.services
def test_servers_starts_a_cluster_of_separate_servers(lab) -> None:
    from perflab import services

    if not services.service_available("memcached") and not services.is_strict():
        pytest.skip("memcached is not installed")
    cluster = lab.servers("memcached", 3)
    try:
        assert len({server.address for server in cluster}) == 3
        assert all(server.running for server in cluster)
    finally:
        for server in cluster:
            server.stop()


def test_servers_without_the_program_prints_the_install_line(
    lab, missing_servers, monkeypatch, capsys
) -> None:
    monkeypatch.delenv("PERFLAB_STRICT", raising=False)

    assert lab.servers("memcached", 2) == []
    assert "apt-get install memcached" in capsys.readouterr().out


def test_the_exercise_checks_and_formatters_come_from_perflab_itself() -> None:
    import perflab

    for name in ("check", "check_equal", "check_queries", "format_bytes", "format_ratio"):
        assert name in perflab.__all__ and callable(getattr(perflab, name))
