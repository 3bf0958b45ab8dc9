"""A lab: one kernel's database copy, caches and servers, and the tools to measure them.

``open_lab()`` prepares one (configure Django, copy the template, set the caches); ``Lab``'s
methods are the whole API a lesson uses: measure, compare, explain, get a page, start servers,
run part of the lesson on another database, serve the shop with real workers and load it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from perflab import (
    caches,
    capture,
    events_db,
    kernel,
    paths,
    processes,
    profiling,
    scaling,
    schema,
    search,
    services,
    storage,
)
from perflab import compare as comparing
from perflab import explain as explaining
from perflab import measure as measuring
from perflab import recorded as recordings
from perflab import replica as replicas
from perflab import seed as seeding
from perflab.beyond import Beyond
from perflab.client import Requests
from perflab.databases import postgres_or_none, prepare_postgres, prepare_sqlite
from perflab.django_setup import check_migrations_match_models, configure_django, use_database
from perflab.errors import PerflabError, ServiceUnavailable, UnknownChoice
from perflab.serving import Serving

if TYPE_CHECKING:
    from django.http import HttpResponse

    from perflab.measure import Measurement
    from perflab.services import Service

__all__ = ["DATABASES", "TABLES", "Lab", "open_lab"]

DATABASES = ("sqlite", "postgres")
TABLES = (
    "shop_category", "shop_tag", "shop_product", "shop_product_tags", "auth_user",
    "shop_review", "shop_order", "shop_orderline",
)


@dataclass
class Lab(Serving, Beyond):
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
    _requests: Requests = field(default_factory=Requests, init=False, repr=False)
    _elsewhere: dict[str, Lab] = field(default_factory=dict, init=False, repr=False)
    _replicas: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    # --- measuring: the toolkit's own functions, so notebooks only ever need `lab` ------------
    # The same objects as perflab.measure.measure etc.: their real, typed signatures, no wrapper.
    measure = staticmethod(measuring.measure)
    compare = staticmethod(comparing.compare)
    explain = staticmethod(explaining.explain)
    recorded = staticmethod(recordings.load)
    print_sql = staticmethod(capture.print_sql)
    profile = staticmethod(profiling.profile)

    def record(self, name: str, *measurements: Measurement, title: str) -> recordings.Recorded:
        """Keep ``measurements`` as the recorded figures ``name``, for kernels that can't run them.

        Writes ``notebooks/recorded/<name>.json`` under ``python -m perflab record``; otherwise
        checks this run's query counts against that record (a stale record is an error).
        """
        return recordings.record(name, list(measurements), title=title, scale=self.scale.name,
                               database=self.database)

    # --- requests ------------------------------------------------------------------------------
    def get(
        self,
        target: str | type | Callable[..., Any],
        path: str = "/",
        *,
        user: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Send one GET and return the response, rendered. ``target`` is one of:

        - a URL (``lab.get("/?page=2")``): through URL routing and every middleware, as a
          browser's request goes; ``user`` is logged in (once) for it;
        - a view class or function (``lab.get(ProductListView, "/?page=2")``): that view alone,
          its request from ``RequestFactory`` with ``request.user`` set to ``user``;
        - a WSGI handler (``lab.get(WSGIHandler(), "/healthz")``): as a server hands it a request.
        """
        return self._requests.send("get", target, path, user=user, headers=headers)

    def post(
        self,
        target: str | type | Callable[..., Any],
        path: str = "/",
        *,
        data: Any = None,
        user: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Send one POST of ``data`` (a form's fields), as ``get()`` sends a GET."""
        return self._requests.send("post", target, path, user=user, headers=headers, data=data)

    # --- services ------------------------------------------------------------------------------
    def service(self, name: str, *, strict: bool | None = None) -> Any:
        """Start (or reuse) a real server for this kernel; None with a hint if it is missing."""
        return kernel.start_lab_service(name, strict=strict)

    def servers(self, name: str, count: int, *, strict: bool | None = None) -> list[Service]:
        """Start ``count`` more servers of one kind (a cluster), each its own, stopped at exit.

        A missing binary raises when strict (``PERFLAB_STRICT=1``); otherwise it prints the
        install line and returns an empty list.
        """
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
            if name not in caches.CACHES:
                raise UnknownChoice("cache", name, caches.CACHES)
        added = caches.add_caches(names, self.name)
        self.cache_aliases = tuple(added)
        return added

    def replica(
        self, alias: str = "replica", *, delay_ms: int = 0, strict: bool | None = None
    ) -> Any:
        """Start a streaming replica of this lab's PostgreSQL; add it to Django as ``alias``.

        ``pg_basebackup -R`` copies the primary into this kernel's own folder and a hot standby
        starts on it, caught up before this returns. ``delay_ms`` makes it apply each commit
        that much later (``recovery_min_apply_delay``). The same alias again returns the same
        replica. Returns the running ``perflab.replica.ReplicaService``; None with the install
        line on a lab without PostgreSQL (an error when strict).
        """
        server = self._replicas.get(alias)
        if server is not None and server.running:
            return server
        try:
            if self.database != "postgres" and services.service_available("postgres"):
                raise PerflabError("A replica copies a PostgreSQL server, and this lab runs on "
                                   f"{self.database}: start it with setup(database='postgres').")
            if self.database != "postgres":
                raise ServiceUnavailable("A replica copies a PostgreSQL server, which is not "
                                         f"installed here.\n{services.install_hint('postgres')}")
            primary = kernel.start_lab_service("postgres", strict=True)
            server = services.start_replica(primary, alias=alias, delay_ms=delay_ms,
                                            strict=strict)
        except ServiceUnavailable as exc:
            if strict or (strict is None and services.is_strict()):
                raise
            print(f"⚠️  {exc}")
            return None
        self._replicas[alias] = server
        replicas.add_alias(alias, replicas.replica_settings(server, self.database_settings))
        return server

    @contextmanager
    def using(self, database: str | None = None, *, scale: str | None = None) -> Iterator[Lab]:
        """Run a block on another database or at another scale, then come back to this lab.

        ``with lab.using("postgres") as pg:`` points Django at a copy of the same data (same
        scale) on a real PostgreSQL server; ``with lab.using(scale="default"):`` at a copy of
        the same database holding another scale's data (its template is built once if need be),
        so one notebook can measure the same code on both sizes. After the block, Django is
        back on this lab's database. Each other copy is made once per kernel and kept, so
        several cells can each run a block on it and see what the earlier ones did. The caches
        are emptied at each switch: a value cached from one database never answers for
        another. A missing server raises ServiceUnavailable, with the install line.
        """
        database = database or self.database
        if database not in DATABASES:
            raise UnknownChoice("database", database, DATABASES)
        size = self.scale if scale is None else seeding.resolve_scale(scale)
        if database == self.database and size.name == self.scale.name:
            yield self
            return
        key = f"{database}/{size.name}"
        other = self._elsewhere.get(key)
        if other is None:
            # Another scale gets its own file name: the two copies live side by side.
            name = self.name if size.name == self.scale.name else f"{self.name}-{size.name}"
            other = open_lab(database=database, scale=size, cache=self.cache, name=name,
                             fallback=False)
            self._elsewhere[key] = other
        else:
            other._switch_to()
        try:
            yield other
        finally:
            self._switch_to()

    def events_database(self, *, strict: bool | None = None) -> events_db.EventsDatabase | None:
        """Give this kernel an empty events database on your PostgreSQL (lesson 11), migrated.

        Its two tables (``events.models``: one plain, one partitioned by month) are on the
        ``events`` alias; ``.fill()`` generates their rows inside PostgreSQL, about 50 per
        review of this lab's scale. Dropped at exit. Without PostgreSQL: None and the install
        line (an error when strict). Calling it again starts from empty tables.
        """
        return events_db.open_events_database(name=self.name, scale=self.scale, strict=strict)

    def compare_scales(
        self,
        candidates: Mapping[str, Callable[[], Any]],
        *,
        title: str,
        scales: tuple[str, ...] = ("small", "default"),
        before: Callable[[], Any] | None = None,
    ) -> scaling.ByScale:
        """Measure and compare ``candidates`` ({label: function}) at each scale, interleaved.

        Each scale runs on its own copy of this lab's database (``using(scale=...)``);
        ``before`` runs first at each scale (fill a cache, say). The first candidate is the
        baseline. Returns a ByScale: ``.counts()``, ``.chart()``, ``.sentences(...)``.
        """
        comparisons = {}
        for scale in scales:
            with self.using(scale=scale):
                if before is not None:
                    before()
                comparisons[scale] = self.compare(
                    *(self.measure(label, func) for label, func in candidates.items()),
                    title=scaling.scale_title(title, scale), interleave=True, chart=False,
                )
        return scaling.ByScale(comparisons)

    def _switch_to(self) -> None:
        use_database(self.database_settings)
        caches.use_cache(self.cache, self.name, [])
        if self.cache_aliases:
            caches.add_caches(self.cache_aliases, self.name)
        for alias, server in self._replicas.items():  # use_database() kept "default" alone
            if server.running:
                replicas.add_alias(alias, replicas.replica_settings(server, self.database_settings))

    def folder(self, name: str) -> Path:
        """Return an empty folder of this kernel's own, private to you, removed when it exits.

        Folders of kernels that died without cleaning up are removed here, the next time.

        It lives in perflab's per-user state folder (0700), never in the repository or a shared
        temporary path: for files a lesson writes, such as tests it runs in a subprocess.
        """
        folders = paths.state_dir("folders")
        for old in folders.iterdir():  # left by kernels that were killed before their atexit ran
            pid = old.name.rsplit("-", 1)[-1]
            if pid.isdigit() and int(pid) != os.getpid() and not processes.pid_alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
        path = folders / f"{self.name}-{name}-{os.getpid()}"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(mode=0o700)
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        return path

    def whoosh_index(self) -> search.SearchIndexFolder:
        """Point haystack at the current database copy's own, private Whoosh index folder."""
        return search.whoosh_index(self.folder)

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
        # The folder holding the server's socket is libpq's host: a query parameter in a URL.
        host = db.get("HOST") or db["OPTIONS"]["host"]
        port = db.get("PORT") or db["OPTIONS"]["port"]
        return (
            f"postgresql+psycopg://{db['USER']}@/{db['NAME']}"
            f"?host={quote(str(host), safe='/')}&port={port}"
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
        return storage.table_storage(table)

    def add_index(self, model: Any, index: Any) -> None:
        """Create ``index`` on ``model``'s table now, with the call an AddIndex migration makes.

        Measurements note which of these indexes existed, so ``compare(..., interleave=True)``
        can time "before" and "after" round by round, adding and dropping it in between.
        """
        schema.add_index(model, index)

    def drop_index(self, model: Any, index: Any) -> None:
        """Remove an index made by add_index(), as a RemoveIndex migration would."""
        schema.drop_index(model, index)

    def database_size(self) -> int:
        """Return the bytes this lab's whole database takes."""
        return storage.database_size()

    def reset(self) -> Lab:
        """Throw this lab's database away and start again from the template (caches emptied)."""
        fresh = open_lab(database=self.database, scale=self.scale, cache=self.cache,
                         name=self.name)
        if self.cache_aliases:
            fresh.use_caches(*self.cache_aliases)
        for alias, server in self._replicas.items():  # the fresh copy reaches them too
            if server.running:
                server.catch_up()
                fresh._replicas[alias] = server
        fresh._switch_to()
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


def open_lab(
    *,
    database: str,
    scale: seeding.Scale,
    cache: str,
    name: str,
    fallback: bool = True,
) -> Lab:
    """Configure Django and give this kernel a fresh copy of ``database`` at ``scale``.

    PostgreSQL that cannot start falls back to SQLite with a note when ``fallback`` (and not
    strict); otherwise it raises ServiceUnavailable.
    """
    started = time.perf_counter()
    configure_django()
    check_migrations_match_models()
    notes: list[str] = []
    if database == "postgres":
        if fallback and postgres_or_none(notes) is None:
            database = "sqlite"
        elif not fallback:  # raises ServiceUnavailable, with the install line, if it can't start
            kernel.start_lab_service("postgres", strict=True)
    if database == "postgres":
        db_settings, template, built = prepare_postgres(scale, name)
    else:
        db_settings, template, built = prepare_sqlite(scale, name, notes)
    use_database(db_settings)
    schema.forget(str(db_settings["NAME"]))  # a fresh copy: none of the lab's indexes yet
    cache = caches.use_cache(cache, name, notes)
    return Lab(
        scale=scale, database=database, name=name, database_settings=db_settings,
        template=template, cache=cache, prepare_seconds=time.perf_counter() - started,
        built_template=built, notes=notes,
    )
