"""Give a lab its own database: a template per scale and schema, built once, copied per kernel.

SQLite templates are files, PostgreSQL templates are databases copied with ``CREATE DATABASE ...
TEMPLATE``. A build happens under a lock between processes (two kernels started at once build
once), writes under a temporary name and renames when whole, and cleans up after a killed build
or a full disk. Connection settings are built from URLs by django-environ, as settings.py does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import environ

from perflab import bulk
from perflab import seed as seeding
from perflab.django_setup import migrate, schema_version, use_database
from perflab.errors import DiskFull, ServiceUnavailable
from perflab.kernel import (
    belongs_to_dead_kernel,
    drop_at_exit,
    remove_at_exit,
    remove_dead_kernels_files,
    start_lab_service,
)
from perflab.paths import state_dir
from perflab.processes import file_lock

__all__ = [
    "build_postgres",
    "build_sqlite",
    "postgres_or_none",
    "postgres_settings",
    "prepare_postgres",
    "prepare_sqlite",
    "sqlite_settings",
    "sqlite_template",
]


def sqlite_settings(path: Path) -> dict[str, Any]:
    """Return Django's DATABASES entry for the SQLite file ``path``."""
    return environ.Env.db_url_config(f"sqlite:///{path}")


def postgres_settings(server: Any, dbname: str) -> dict[str, Any]:
    """Return Django's DATABASES entry for ``dbname`` on ``server``, through its socket folder.

    django-environ keeps a %-encoded socket folder in a URL's host as it is, so the folder
    goes in the query, and from there into HOST and PORT, where Django and libpq expect it.
    """
    settings = environ.Env.db_url_config(
        f"postgres://postgres@/{dbname}?host={quote(str(server.host), safe='/')}"
        f"&port={server.port}"
    )
    options = settings["OPTIONS"]
    settings["HOST"], settings["PORT"] = options.pop("host"), str(options.pop("port"))
    return settings


def _seed_current(scale: seeding.Scale) -> int:
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    # The admin has no usable password: `make site` sets a random one per learner, so no copy
    # of a template ever opens with a password that every user of a shared host knows.
    counts = bulk.seed_database(connection, scale, admin_password=make_password(None))
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE perflab_meta (key VARCHAR(50) PRIMARY KEY, value TEXT)")
        cursor.executemany(
            "INSERT INTO perflab_meta (key, value) VALUES (%s, %s)",
            [("scale", scale.name), ("schema", schema_version())],
        )
        if connection.vendor == "sqlite":
            cursor.execute("ANALYZE")  # give the planner statistics, as a real database has
    return sum(counts.values())


def build_sqlite(path: Path, scale: seeding.Scale) -> int:
    """Migrate and seed a new SQLite file at ``path``; return the rows seeded.

    The file is written without a rollback journal or fsyncs: callers build under a temporary
    name and rename when whole, so a crash leaves only a partial file that nobody uses.
    """
    from django.db import connections

    use_database(sqlite_settings(path))
    try:
        with bulk.template_build(connections["default"]):
            migrate()
            rows = _seed_current(scale)
    finally:
        connections.close_all()
    return rows


# --- SQLite --------------------------------------------------------------------------------------


def sqlite_template(scale: seeding.Scale, notes: list[str] | None = None) -> tuple[Path, bool]:
    """Return the template file for ``scale`` (building it if needed) and whether it was built.

    A build that was killed left its partial file behind: the next build removes it (and says
    so in ``notes``). A build that fills the disk removes its own partial file.
    """
    folder = state_dir("templates")
    path = folder / f"{scale.name}-{schema_version()}.sqlite3"
    if _sqlite_template_ok(path, scale):
        return path, False
    with file_lock(folder / f"{scale.name}.lock"):
        if _sqlite_template_ok(path, scale):  # another kernel built it while we waited
            return path, False
        # Only the lock holder builds, so any partial build of this scale is a dead one's.
        partial = list(folder.glob(f"{scale.name}-*.building-*"))
        for leftover in partial:
            leftover.unlink(missing_ok=True)
        if partial and notes is not None:
            notes.append("An earlier build of this template was interrupted; its partial "
                         "files were removed and the template built again.")
        building = path.with_suffix(f".building-{os.getpid()}")
        from django.db import connections

        try:
            build_sqlite(building, scale)
            os.replace(building, path)
        except Exception as exc:
            if _is_disk_full(exc):
                raise _disk_full(folder, scale, _template_bytes(scale), "build") from exc
            raise
        finally:
            connections.close_all()  # an open file keeps its disk space until closed
            for leftover in folder.glob(f"{building.name}*"):  # with -journal, -wal, -shm
                leftover.unlink(missing_ok=True)
        for old in folder.glob(f"{scale.name}-*.sqlite3"):  # templates of older schemas
            if old != path:
                old.unlink(missing_ok=True)
    return path, True


#: Bytes a SQLite template takes per generated row, measured (about 5 MB at `small`).
_BYTES_PER_ROW = 185


def _template_bytes(scale: seeding.Scale) -> int:
    return scale.approximate_rows * _BYTES_PER_ROW


def _is_disk_full(exc: BaseException) -> bool:
    """Return True if ``exc`` (or what caused it) says the disk is full, whatever the driver."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(seen).lower()
        if "disk is full" in text or "no space left" in text or "quota exceeded" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _disk_full(folder: Path, scale: seeding.Scale, needed: int, what: str) -> DiskFull:
    free = shutil.disk_usage(folder).free
    return DiskFull(
        f"The disk holding {folder} is full: perflab could not {what} the {scale.name!r} "
        f"database, which needs about {needed / 1e6:.0f} MB ({free / 1e6:.0f} MB free). "
        f"Free some space, or set PERFLAB_HOME to a folder on a disk with room."
    )


def _sqlite_template_ok(path: Path, scale: seeding.Scale) -> bool:
    if not path.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            meta = dict(db.execute("SELECT key, value FROM perflab_meta").fetchall())
    except sqlite3.DatabaseError:
        return False  # half-written or from an older perflab: rebuild
    return meta.get("scale") == scale.name and meta.get("schema") == schema_version()



def prepare_sqlite(
    scale: seeding.Scale, name: str, notes: list[str]
) -> tuple[dict[str, Any], str, bool]:
    """Copy the template for ``scale`` into this kernel's own lab file; return its settings."""
    template, built = sqlite_template(scale, notes)
    labs = state_dir("labs")
    remove_dead_kernels_files(labs.glob("*-*.sqlite3"))
    target = labs / f"{name}-{os.getpid()}.sqlite3"
    use_database(sqlite_settings(target))  # closes any connection to the previous copy
    try:
        shutil.copyfile(template, target)
    except OSError as exc:
        target.unlink(missing_ok=True)  # a truncated copy would only hold the disk full
        if _is_disk_full(exc):
            raise _disk_full(labs, scale, template.stat().st_size, "copy") from exc
        raise
    remove_at_exit(target)
    return sqlite_settings(target), str(template), built


# --- PostgreSQL ----------------------------------------------------------------------------------


def postgres_or_none(notes: list[str]) -> Any:
    """Return the user's PostgreSQL server, or None with a note (an error when strict)."""
    try:
        return start_lab_service("postgres", strict=None, quiet=True)
    except ServiceUnavailable as exc:
        from perflab.services import is_strict

        if is_strict():
            raise
        notes.append(f"{exc} This lab runs on SQLite instead.")
        return None


def prepare_postgres(scale: seeding.Scale, name: str) -> tuple[dict[str, Any], str, bool]:
    """Copy the template for ``scale`` into this kernel's own database; return its settings."""
    server = start_lab_service("postgres", strict=True)
    template = f"perflab_tpl_{scale.name}_{schema_version()}"
    built = False
    if not server.database_exists(template):
        # Kernels started at once must not build the same template side by side.
        with file_lock(state_dir("templates") / f"postgres-{scale.name}.lock"):
            if not server.database_exists(template):
                _build_postgres_template(server, scale, template)
                built = True
    # The pid stays at the end (names are cut at 63 bytes) so dead kernels' copies can be found.
    lab_db = re.sub(r"[^a-z0-9_]", "_", f"perflab_lab_{name[:40]}_{os.getpid()}".lower())
    use_database(postgres_settings(server, "postgres"))
    from django.db import connections

    connections.close_all()
    _drop_dead_lab_databases(server)
    server.drop_database(lab_db)
    server.create_database(lab_db, template=template)
    drop_at_exit(server, lab_db)
    return postgres_settings(server, lab_db), template, built


def build_postgres(server: Any, scale: seeding.Scale, dbname: str) -> int:
    """Create ``dbname`` on ``server`` (dropping a leftover), migrate and seed it; return rows."""
    from django.db import connections

    use_database(postgres_settings(server, "postgres"))
    server.drop_database(dbname)  # left by a build that was killed
    server.create_database(dbname)
    use_database(postgres_settings(server, dbname))
    try:
        migrate()
        rows = _seed_current(scale)
    finally:
        connections.close_all()
    with server.connect(dbname) as conn:
        conn.execute("ANALYZE")  # give the planner statistics, as a real database has
    return rows


def _build_postgres_template(server: Any, scale: seeding.Scale, template: str) -> None:
    """Migrate and seed a new database, then rename it: a template exists only when whole."""
    building = f"{template}_building"
    build_postgres(server, scale, building)
    with server.connect("postgres") as conn:
        conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{template}"')
        older = [row[0] for row in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s AND datname <> %s",
            [f"perflab_tpl_{scale.name}_%", template],
        )]
    for dbname in older:  # templates of older schemas, as for SQLite
        server.drop_database(dbname)


def _drop_dead_lab_databases(server: Any) -> None:
    """Drop lab copies left by kernels that died: the server's data folder outlives them."""
    with server.connect("postgres") as conn:
        names = [row[0] for row in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'perflab_lab_%'"
        )]
    for dbname in names:
        if belongs_to_dead_kernel(dbname, "_"):
            server.drop_database(dbname)
