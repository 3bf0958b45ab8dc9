"""Give each notebook a ready lab: Django configured in-process, its own seeded database copy.

``setup()`` is the one call at the top of every lesson. It configures the demo project, makes
sure a template database exists for the scale and schema (built once, seeded with raw bulk
writes), copies it for this kernel, and returns a :class:`Lab` whose methods measure what the
notebook runs. Calling it again in the same kernel gives a fresh copy; nothing leaks between
notebooks because each kernel gets its own database file (or PostgreSQL database).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from . import seed as seeding
from .errors import DiskFull, PerflabError, ServiceUnavailable, StaleSchema, UnknownChoice
from .paths import REPO_ROOT, state_dir

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from .measure import Comparison, Explain, Measurement
    from .services import Service

__all__ = ["CACHES", "DATABASES", "Lab", "schema_version", "setup"]

DATABASES = ("sqlite", "postgres")
CACHES = ("locmem", "dummy", "file", "db", "memcached", "redis")
TABLES = (
    "shop_category", "shop_tag", "shop_product", "shop_product_tags", "auth_user",
    "shop_review", "shop_order", "shop_orderline",
)
# Only for labs: a notebook never serves the internet, and Django refuses to start without one.
LAB_SECRET_KEY = "perflab-lab-only-not-a-secret"

_services: dict[str, Any] = {}


@dataclass
class Lab:
    """One notebook's lab: which database and scale it runs on, and the tools to measure it."""

    scale: seeding.Scale
    database: str
    name: str
    database_settings: dict[str, Any]
    template: str
    cache: str
    prepare_seconds: float
    built_template: bool = False
    notes: list[str] = field(default_factory=list)
    cache_aliases: tuple[str, ...] = ()

    # --- measuring: thin wrappers so notebooks only ever need `lab` ---------------------------
    def measure(
        self,
        label: str,
        func: Callable[[], Any] | None = None,
        *,
        repeat: int | None = None,
        warmup: int | None = None,
        using: str = "default",
        memory: bool = False,
        timer: str = "wall",
        gc: bool = False,
    ) -> Measurement:
        """Measure ``func`` (or the ``with`` block): queries run, and time over rounds.

        See ``perflab.measure.measure`` for the method (warm-up, untimed capture, GC off).
        """
        from . import measure

        return measure.measure(label, func, repeat=repeat, warmup=warmup, using=using,
                               memory=memory, timer=timer, gc=gc)

    def compare(
        self,
        *measurements: Measurement | str,
        baseline: Measurement | str | None = None,
        title: str | None = None,
        chart: bool = True,
        interleave: bool = False,
        tolerance: float | None = None,
    ) -> Comparison:
        """Compare measurements side by side: a table and a bar chart, ratios to the first."""
        from . import measure

        return measure.compare(
            *measurements, baseline=baseline, title=title, chart=chart, interleave=interleave,
            tolerance=measure.TOLERANCE if tolerance is None else tolerance,
        )

    def explain(
        self, queryset: QuerySet[Any], *, analyze: bool | None = None, using: str | None = None
    ) -> Explain:
        """Return the database's plan for ``queryset``, as this lab's vendor writes it."""
        from . import measure

        return measure.explain(queryset, analyze=analyze, using=using)

    def print_sql(self) -> Any:
        """Print every query as it runs inside the block, as shell_plus --print-sql does."""
        from . import measure

        return measure.print_sql()

    # --- services ------------------------------------------------------------------------------
    def service(self, name: str, *, strict: bool | None = None) -> Any:
        """Start (or reuse) a real server for this kernel; None with a hint if it is missing."""
        return start_lab_service(name, strict=strict)

    def servers(self, name: str, count: int, *, strict: bool | None = None) -> list[Service]:
        """Start ``count`` more servers of one kind (a cluster), each its own, stopped at exit.

        A missing binary raises when strict (``PERFLAB_STRICT=1``); otherwise it prints the
        install line and returns an empty list.
        """
        from . import services

        if count < 1:
            raise PerflabError(f"servers() needs a count of at least 1 (got {count}).")
        try:
            return [services.start_service(name, strict=strict) for _ in range(count)]
        except ServiceUnavailable as exc:
            if strict or (strict is None and services.is_strict()):
                raise
            print(f"⚠️  {exc}")
            return []

    def use_caches(self, *names: str) -> dict[str, Any]:
        """Add one cache alias per backend named (beside "default"); return the caches by name.

        Lets one notebook set local memory, files, the database, memcached and Redis side by
        side. A server that is not installed is left out with a note (an error when strict).
        """
        for name in names:
            if name not in CACHES:
                raise UnknownChoice("cache", name, CACHES)
        added = _add_caches(names, self.name)
        self.cache_aliases = tuple(added)
        return added

    # --- facts about the data ------------------------------------------------------------------
    @property
    def vendor(self) -> str:
        from django.db import connection

        return connection.vendor

    @property
    def sql_url(self) -> str:
        """Return a SQLAlchemy URL for the same database, for ipython-sql's ``%sql``."""
        db = self.database_settings
        if self.database == "sqlite":
            return f"sqlite:///{db['NAME']}"
        # HOST is the folder holding the server's socket: libpq takes it as a query parameter.
        return (
            f"postgresql+psycopg://{db['USER']}@/{db['NAME']}"
            f"?host={quote(db['HOST'], safe='/')}&port={db['PORT']}"
        )

    def counts(self) -> dict[str, int]:
        """Return the row count of each shop table (a quick look at the scale)."""
        from django.db import connection

        with connection.cursor() as cursor:
            result = {}
            for table in TABLES:
                cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
                result[table] = cursor.fetchone()[0]
        return result

    def storage(self, table: str) -> Any:
        """Return the disk space ``table``'s rows and each of its indexes take."""
        from . import storage

        return storage.table_storage(table)

    def add_index(self, model: Any, index: Any) -> None:
        """Create ``index`` on ``model``'s table now, with the call an AddIndex migration makes."""
        from django.db import connection

        with connection.schema_editor() as editor:
            editor.add_index(model, index)

    def drop_index(self, model: Any, index: Any) -> None:
        """Remove an index made by add_index(), as a RemoveIndex migration would."""
        from django.db import connection

        with connection.schema_editor() as editor:
            editor.remove_index(model, index)

    def database_size(self) -> int:
        """Return the bytes this lab's whole database takes."""
        from . import storage

        return storage.database_size()

    def reset(self) -> Lab:
        """Throw this lab's database away and start again from the template (caches emptied)."""
        fresh = setup(database=self.database, scale=self.scale.name, cache=self.cache,
                      name=self.name, quiet=True)
        if self.cache_aliases:
            fresh.use_caches(*self.cache_aliases)
        return fresh

    def summary(self) -> str:
        """Return one line about this lab (where its copy lives: ``database_settings``)."""
        how = "built the template and copied it" if self.built_template else "copied the template"
        return (
            f"Lab {self.name!r}: {self.database} at scale {self.scale.name!r} "
            f"({self.scale.products:,} products, {self.scale.reviews:,} reviews); "
            f"{how} in {self.prepare_seconds:.2f} s; cache {self.cache!r}"
        )

    def __repr__(self) -> str:
        return f"<Lab {self.name} {self.database}/{self.scale.name}>"

    def _repr_html_(self) -> str:
        import html

        notes = "".join(f"<br>⚠️ {html.escape(n)}" for n in self.notes)
        return f"<div><b>perflab</b> · {html.escape(self.summary())}{notes}</div>"


def setup(
    *,
    database: str | None = None,
    scale: str | None = None,
    cache: str = "locmem",
    name: str | None = None,
    quiet: bool = False,
) -> Lab:
    """Configure Django in this kernel and return a Lab with a fresh seeded database.

    ``database`` is "sqlite" (default, nothing to install) or "postgres" (a real server that
    perflab starts); ``scale`` defaults to ``$PERFLAB_SCALE`` or "small". Safe to call again.
    """
    started = time.perf_counter()
    _show_errors_in_one_line()
    source = None if database else "the PERFLAB_DATABASE environment variable"
    database = database or os.environ.get("PERFLAB_DATABASE") or "sqlite"
    if database not in DATABASES:
        raise UnknownChoice("database", database, DATABASES, source=source)
    scale_obj = seeding.resolve_scale(scale)
    if cache not in CACHES:
        raise UnknownChoice("cache", cache, CACHES)
    name = _lab_name(name)

    _configure_django()
    _check_migrations_match_models()
    notes: list[str] = []
    if database == "postgres" and _postgres_or_none(notes) is None:
        database = "sqlite"
    if database == "postgres":
        db_settings, template, built = _prepare_postgres(scale_obj, name)
    else:
        db_settings, template, built = _prepare_sqlite(scale_obj, name, notes)
    _use_database(db_settings)
    cache = _use_cache(cache, name, notes)

    lab = Lab(
        scale=scale_obj, database=database, name=name, database_settings=db_settings,
        template=template, cache=cache, prepare_seconds=time.perf_counter() - started,
        built_template=built, notes=notes,
    )
    _register_magics()
    if not quiet:
        _show(lab)
    return lab


# --- Django configuration ------------------------------------------------------------------------


def _configure_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # Jupyter runs cells inside an event loop; Django's ORM refuses sync calls from one unless told
    # this is deliberate. A notebook is single-user and sequential, so it is.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    os.environ.setdefault("DJANGO_SECRET_KEY", LAB_SECRET_KEY)
    os.environ.setdefault("DJANGO_DEBUG", "0")
    os.environ.setdefault("DJANGO_DEBUG_TOOLBAR", "0")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
    # Until the lab's database exists, point at nothing real so no stray file is created.
    os.environ.setdefault("DATABASE_URL", "sqlite://:memory:")
    demo = str(REPO_ROOT / "demo_project")
    if demo not in sys.path:  # works without the editable install too (e.g. a bare checkout)
        sys.path.insert(0, demo)

    import django
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    if not apps.ready:
        try:
            django.setup()
        except ImproperlyConfigured as exc:  # a bad DATABASE_URL or CACHE_URL, say
            raise PerflabError(f"The demo project's settings: {exc}") from None


def _use_database(db: dict[str, Any]) -> None:
    """Point Django's default connection at ``db``, closing whatever it pointed at before."""
    from django.conf import settings
    from django.contrib.contenttypes.models import ContentType
    from django.db import connections

    connections.close_all()
    settings.DATABASES = {"default": db}
    # ConnectionHandler caches its settings and per-thread connections; drop both so the next
    # query opens a connection to the new database (possibly on another engine).
    connections._settings = None
    connections.__dict__.pop("settings", None)
    for alias in list(connections.settings):
        with contextlib.suppress(AttributeError):
            delattr(connections._connections, alias)
    ContentType.objects.clear_cache()


def _use_cache(cache: str, name: str, notes: list[str]) -> str:
    """Point Django's default cache at ``cache``; return the backend really in use."""
    backend = _cache_settings(cache, name)
    if backend is None:  # the server is not installed (and not strict): say so, use locmem
        notes.append(f"{cache} is not installed, so this lab caches in local memory instead.")
        cache, backend = "locmem", _cache_settings("locmem", name)
    _install_caches({"default": backend})
    return cache


def _add_caches(names: Sequence[str], lab_name: str) -> dict[str, Any]:
    from django.conf import settings

    configured = {"default": settings.CACHES["default"]}
    for name in names:
        backend = _cache_settings(name, f"{lab_name}-{name}")
        if backend is None:
            print(f"⚠️  {name} is not installed, so this lab has no {name!r} cache.")
            continue
        configured[name] = backend
    caches = _install_caches(configured)
    return {name: caches[name] for name in names if name in configured}


def _install_caches(configured: dict[str, dict[str, Any]]) -> Any:
    """Make ``configured`` Django's CACHES, every cache empty; return Django's cache handler."""
    from django.conf import settings
    from django.core.cache import caches

    caches.close_all()
    settings.CACHES = configured
    # The handler caches its settings and per-thread connections: drop both.
    caches._settings = None
    caches.__dict__.pop("settings", None)
    for alias in configured:
        with contextlib.suppress(AttributeError):
            delattr(caches._connections, alias)
    if any(b["BACKEND"].endswith("DatabaseCache") for b in configured.values()):
        from django.core.management import call_command

        call_command("createcachetable", verbosity=0)
    # A fresh lab starts with empty caches: values cached from an earlier database copy (a
    # re-run in the same kernel, or reset()) would otherwise answer for rows that changed.
    for alias in configured:
        caches[alias].clear()
    return caches


def _cache_settings(cache: str, name: str) -> dict[str, Any] | None:
    if cache == "locmem":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": name}
    if cache == "dummy":
        return {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}
    if cache == "file":
        folder = state_dir("caches", f"{name}-{os.getpid()}")
        _remove_at_exit(folder)
        return {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                "LOCATION": str(folder)}
    if cache == "db":
        return {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                "LOCATION": "perflab_cache"}
    server = start_lab_service(cache)
    if server is None:
        return None
    if cache == "memcached":
        return {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                "LOCATION": server.location}
    return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": server.url}


def _check_migrations_match_models() -> None:
    """Refuse to build a database from migrations that no longer describe the models."""
    from django.apps import apps
    from django.db.migrations.autodetector import MigrationAutodetector
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.state import ProjectState

    loader = MigrationLoader(None, ignore_no_migrations=True)
    detector = MigrationAutodetector(loader.project_state(), ProjectState.from_apps(apps))
    changes = detector.changes(graph=loader.graph)
    if changes:
        raise StaleSchema(
            "The models changed but no migration describes the change "
            f"(apps: {', '.join(sorted(changes))}). Run "
            "`python demo_project/manage.py makemigrations`, then setup() again; "
            "perflab rebuilds its template database for the new schema by itself."
        )


def schema_version() -> str:
    """Return a short hash of everything that shapes a template database's contents."""
    import django

    digest = hashlib.sha256()
    digest.update(f"django={django.__version__};seed={seeding.SEED_VERSION}".encode())
    migrations = REPO_ROOT / "demo_project" / "shop" / "migrations"
    # The generator's own source too: editing it changes the rows even if SEED_VERSION stays.
    for path in [Path(seeding.__file__), *sorted(migrations.glob("*.py"))]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _seed_current(scale: seeding.Scale) -> None:
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    # The admin has no usable password: `make site` sets a random one per learner, so no copy
    # of a template ever opens with a password that every user of a shared host knows.
    seeding.seed_database(connection, scale, admin_password=make_password(None))
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE perflab_meta (key VARCHAR(50) PRIMARY KEY, value TEXT)")
        cursor.executemany(
            "INSERT INTO perflab_meta (key, value) VALUES (%s, %s)",
            [("scale", scale.name), ("schema", schema_version())],
        )
        if connection.vendor == "sqlite":
            cursor.execute("ANALYZE")  # give the planner statistics, as a real database has


# --- SQLite --------------------------------------------------------------------------------------


def _sqlite_settings(path: Path) -> dict[str, Any]:
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Two notebooks started at once must not both build the same template.
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sqlite_template(scale: seeding.Scale, notes: list[str] | None = None) -> tuple[Path, bool]:
    """Return the template file for ``scale`` (building it if needed) and whether it was built.

    A build that was killed left its partial file behind: the next build removes it (and says
    so in ``notes``). A build that fills the disk removes its own partial file.
    """
    folder = state_dir("templates")
    path = folder / f"{scale.name}-{schema_version()}.sqlite3"
    if _sqlite_template_ok(path, scale):
        return path, False
    with _file_lock(folder / f"{scale.name}.lock"):
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
            _use_database(_sqlite_settings(building))
            _migrate()
            _seed_current(scale)
            connections.close_all()
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


def _prepare_sqlite(
    scale: seeding.Scale, name: str, notes: list[str]
) -> tuple[dict[str, Any], str, bool]:
    template, built = sqlite_template(scale, notes)
    labs = state_dir("labs")
    _reap_dead_lab_files(labs)
    target = labs / f"{name}-{os.getpid()}.sqlite3"
    _use_database(_sqlite_settings(target))  # closes any connection to the previous copy
    try:
        shutil.copyfile(template, target)
    except OSError as exc:
        target.unlink(missing_ok=True)  # a truncated copy would only hold the disk full
        if _is_disk_full(exc):
            raise _disk_full(labs, scale, template.stat().st_size, "copy") from exc
        raise
    _remove_at_exit(target)
    return _sqlite_settings(target), str(template), built


def _reap_dead_lab_files(folder: Path) -> None:
    for path in folder.glob("*-*.sqlite3"):
        pid = path.stem.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            path.unlink(missing_ok=True)


_to_remove: set[Path] = set()


def _remove_at_exit(path: Path) -> None:
    """Delete this kernel's lab file (or cache folder) when the kernel exits."""
    if not _to_remove:
        atexit.register(_remove_now)
    _to_remove.add(path)


def _remove_now() -> None:
    for path in list(_to_remove):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- PostgreSQL ----------------------------------------------------------------------------------


def _postgres_or_none(notes: list[str]) -> Any:
    try:
        return start_lab_service("postgres", strict=None, quiet=True)
    except ServiceUnavailable as exc:
        from .services import is_strict

        if is_strict():
            raise
        notes.append(f"{exc} This lab runs on SQLite instead.")
        return None


def _prepare_postgres(scale: seeding.Scale, name: str) -> tuple[dict[str, Any], str, bool]:
    server = start_lab_service("postgres", strict=True)
    template = f"perflab_tpl_{scale.name}_{schema_version()}"
    built = False
    if not server.database_exists(template):
        # Kernels started at once must not build the same template side by side.
        with _file_lock(state_dir("templates") / f"postgres-{scale.name}.lock"):
            if not server.database_exists(template):
                _build_postgres_template(server, scale, template)
                built = True
    # The pid stays at the end (names are cut at 63 bytes) so dead kernels' copies can be found.
    lab_db = re.sub(r"[^a-z0-9_]", "_", f"perflab_lab_{name[:40]}_{os.getpid()}".lower())
    _use_database(_postgres_settings(server, "postgres"))
    from django.db import connections

    connections.close_all()
    _drop_dead_lab_databases(server)
    server.drop_database(lab_db)
    server.create_database(lab_db, template=template)
    _drop_at_exit(server, lab_db)
    return _postgres_settings(server, lab_db), template, built


def _build_postgres_template(server: Any, scale: seeding.Scale, template: str) -> None:
    """Migrate and seed a new database, then rename it: a template exists only when whole."""
    from django.db import connections

    building = f"{template}_building"
    _use_database(_postgres_settings(server, "postgres"))
    server.drop_database(building)  # left by a build that was killed
    server.create_database(building)
    _use_database(_postgres_settings(server, building))
    _migrate()
    _seed_current(scale)
    connections.close_all()
    with server.connect(building) as conn:
        conn.execute("ANALYZE")  # give the planner statistics, as a real database has
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
        pid = dbname.rsplit("_", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            server.drop_database(dbname)


_postgres_labs: dict[str, Any] = {}


def _drop_at_exit(server: Any, dbname: str) -> None:
    # Registered after the services module's own exit hook, so it runs first (atexit is LIFO),
    # while the server is still up.
    if not _postgres_labs:
        atexit.register(_drop_postgres_labs)
    _postgres_labs[dbname] = server


def _drop_postgres_labs() -> None:
    from django.db import connections

    connections.close_all()
    for dbname, server in list(_postgres_labs.items()):
        if server.running:
            with contextlib.suppress(Exception):  # exiting anyway; the next setup() reaps it
                server.drop_database(dbname)


def _postgres_settings(server: Any, dbname: str) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": dbname,
        "USER": "postgres",
        "HOST": server.host,
        "PORT": str(server.port),
    }


# --- services shared by every lab in this kernel ------------------------------------------------


def start_lab_service(name: str, *, strict: bool | None = None, quiet: bool = False) -> Any:
    """Return this kernel's running server ``name``, starting it on first use.

    A missing binary raises when ``strict`` (or ``PERFLAB_STRICT=1``); otherwise it prints the
    install line and returns None so the notebook can go on with what it can honestly show.
    """
    from . import services

    server = _services.get(name)
    if server is not None and server.running:
        return server
    try:
        if name == "postgres":  # one server per user, shared by every kernel that needs it
            from . import shared_postgres

            server = shared_postgres.attach()
        else:
            server = services.start_service(name)
    except ServiceUnavailable as exc:
        if strict or (strict is None and services.is_strict()) or quiet:
            raise
        print(f"⚠️  {exc}")
        return None
    _services[name] = server
    return server


# --- notebook niceties ---------------------------------------------------------------------------


def _lab_name(name: str | None) -> str:
    if not name:
        # Jupyter Server tells the kernel which notebook it serves; use it so files are findable.
        session = os.environ.get("JPY_SESSION_NAME", "")
        name = Path(session).stem if session else "lab"
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    if not cleaned:
        raise PerflabError(f"Lab name {name!r} has no usable characters; use letters or digits.")
    return cleaned[:60]


def _in_ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _show_errors_in_one_line() -> None:
    """Show perflab's own errors as one line in a notebook: the message says what to do."""
    shell = _in_ipython()
    if shell is None:
        return

    def one_line(shell: Any, etype: type, value: BaseException, tb: Any,
                 tb_offset: int | None = None) -> list[str]:
        line = [f"{etype.__name__}: {value}"]
        # IPython ignores what a custom handler returns; _showtraceback is what ipykernel
        # turns into the cell's error output (the cell still fails, so Run All stops).
        shell._showtraceback(etype, value, line)
        return line

    shell.set_custom_exc((PerflabError,), one_line)


def _register_magics() -> None:
    shell = _in_ipython()
    if shell is None:
        return
    from . import measure, requires

    measure.register_magics(shell)
    requires.register_magics(shell)


def _show(lab: Lab) -> None:
    shell = _in_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        from IPython.display import display

        display(lab)
        return
    print(lab.summary())
    for note in lab.notes:
        print(f"⚠️  {note}")
