"""Serving under load, on a lab: its shop served by real workers, the servers around it, load.

``Serving`` is the part of ``perflab.lab.Lab`` that starts processes a lesson talks to over the
network and measures them: ``serve`` (gunicorn or uvicorn workers, ``perflab.web``),
``edge_cache`` (nginx in front of it, ``perflab.edge``), ``slow_upstream``, ``smtp_server``
and ``celery_worker`` (``perflab.tasks_worker``), ``load`` (Locust, ``perflab.load``),
``compare_loads`` (``perflab.load_compare``), ``load_failures`` (why requests failed),
``capacity`` and ``cores`` (``perflab.capacity``), and PgBouncer and connection counts
(``perflab.db_connections``).
``run_async`` runs a coroutine as an ASGI worker runs an async request (``perflab.event_loop``).
Each server runs on the lab's own database copy and stops with the kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from perflab import event_loop, services, tasks_worker, web
from perflab.capacity import available_cores, capacity
from perflab.db_connections import Pooling
from perflab.errors import ServiceUnavailable
from perflab.load import failure_lines, run_load
from perflab.load_compare import compare_loads

__all__ = ["Serving"]


class Serving(Pooling):
    """The lab's serving methods; ``Lab`` provides ``database_settings`` and ``service``.

    Its database connection methods (``app_database``, ``watch_connections``,
    ``connection_limit``, ``pgbouncer``) come from ``perflab.db_connections.Pooling``.
    """

    database_settings: dict[str, Any]
    load = staticmethod(run_load)
    compare_loads = staticmethod(compare_loads)
    load_failures = staticmethod(failure_lines)
    capacity = staticmethod(capacity)
    cores = staticmethod(available_cores)
    run_async = staticmethod(event_loop.run)

    def service(self, name: str, *, strict: bool | None = None) -> Any:
        raise NotImplementedError

    def serve(
        self,
        app: str | None = None,
        *,
        workers: int = 1,
        worker_class: str = "sync",
        threads: int = 1,
        settings: Mapping[str, Any] | None = None,
        ready_path: str = "/healthz",
        strict: bool | None = None,
    ) -> web.WebServer | None:
        """Serve ``app`` with gunicorn on this lab's database; the server stops with the kernel.

        ``app`` is ``"module:name"``, the shop by default (its ASGI application for
        ``worker_class="uvicorn"``). ``settings`` overrides Django settings in the workers only.
        Returns the running server (``.url``, ``.stop()``), or None with the install line when
        gunicorn is missing (an error when strict).
        """
        if app is None:
            app = web.SHOP_ASGI if worker_class == "uvicorn" else web.SHOP_WSGI
        overrides = {"DATABASES": {"default": dict(self.database_settings)}, **(settings or {})}
        return self._start(lambda: web.WebServer(
            app, workers=workers, worker_class=worker_class, threads=threads,
            settings=overrides, ready_path=ready_path, strict=self._strict(strict),
        ), strict)

    def slow_upstream(
        self, delay_ms: float = 100.0, *, strict: bool | None = None
    ) -> web.SlowUpstream | None:
        """Start a local HTTP server that answers after ``delay_ms``: a slow third-party API."""
        return self._start(
            lambda: web.SlowUpstream(delay_ms, strict=self._strict(strict)), strict
        )

    def edge_cache(
        self, origin: web.WebServer | str, *, cache: bool = True, strict: bool | None = None
    ) -> Any:
        """Start nginx in front of ``origin`` as a CDN's edge: it keeps what the origin allows.

        ``cache=False`` passes every request on (a plain reverse proxy). Returns the running
        ``perflab.edge.EdgeCache`` (``.url``), or None with the install line when nginx is
        missing (an error when strict).
        """
        from perflab.edge import EdgeCache

        url = origin if isinstance(origin, str) else origin.url
        return self._start(
            lambda: EdgeCache(url, cache=cache, strict=self._strict(strict)), strict
        )

    def smtp_server(
        self, delay_ms: float = 0.0, *, strict: bool | None = None
    ) -> tasks_worker.SmtpServer | None:
        """Start a local SMTP server that takes ``delay_ms`` per message and wants a password.

        Its ``settings`` point Django at it (``override_settings(**smtp.settings)``, or a served
        shop's or a worker's ``settings=``); ``count()`` and ``messages()`` read its mailbox.
        """
        return self._start(
            lambda: tasks_worker.SmtpServer(delay_ms, strict=self._strict(strict)), strict
        )

    def celery_worker(
        self,
        *,
        concurrency: int = 1,
        pool: str = "prefork",
        settings: Mapping[str, Any] | None = None,
        strict: bool | None = None,
    ) -> tasks_worker.CeleryWorker | None:
        """Start a Celery worker on this lab's database, with this kernel's Redis as broker.

        Also points this kernel's Celery app at that broker, so ``task.delay()`` queues for the
        worker instead of running in place. Without Redis (not strict): None, with the install
        line, and tasks keep running eagerly here.
        """
        redis = self.service("redis", strict=strict)
        if redis is None:
            return None
        broker = f"redis+socket://{redis.socket_path}"
        overrides = {"DATABASES": {"default": dict(self.database_settings)}, **(settings or {})}
        worker = self._start(lambda: tasks_worker.CeleryWorker(
            broker, concurrency=concurrency, pool=pool, settings=overrides,
            strict=self._strict(strict),
        ), strict)
        if worker is not None:
            _queue_to(broker)
        return worker

    @staticmethod
    def tasks_in_place() -> None:
        """Run Celery tasks in this kernel again, as without a broker (eager mode)."""
        _queue_to(None)

    @staticmethod
    def _strict(strict: bool | None) -> bool:
        return services.is_strict() if strict is None else strict

    def _start(self, make: Callable[[], services.Service], strict: bool | None) -> Any:
        try:
            services.reap_orphans()  # what a killed kernel left behind
            return make().start()
        except ServiceUnavailable as exc:
            if self._strict(strict):
                raise
            print(f"⚠️  {exc}")
            return None


def _queue_to(broker: str | None) -> None:
    """Point this kernel's Celery app at ``broker`` (results there too), or run tasks in place."""
    from config.celery import app

    app.conf.update(broker_url=broker or "", result_backend=broker,
                    task_always_eager=broker is None)
    # Celery keeps the result backend it made on first use; the next use makes the new one.
    app._backend_cache = None
    app._local.__dict__.pop("backend", None)
