"""The load ``perflab.load`` generates: Locust users that GET the paths in turn, without pause.

Run by Locust in its own process (``locust -f``), never imported by a kernel: Locust
monkey-patches the standard library with gevent on import. Its input comes from the
environment: ``PERFLAB_LOAD_PATHS`` (a JSON list of paths, requested in turn),
``PERFLAB_LOAD_WARMUP_S`` (seconds of load before the statistics start: fresh workers load
templates, open connections and fill caches on their first requests), ``PERFLAB_LOAD_MARK``
(a file touched when they start, so the starter can time the server's CPU over the same
window) and ``PERFLAB_LOAD_REQUESTS`` (stop after that many measured requests; 0 for no
limit, the run time then decides). Each user sends its next request as soon as the last one
is answered: a closed loop that finds the server's throughput.

A webhook's load: ``PERFLAB_LOAD_METHOD`` (``POST``), ``PERFLAB_LOAD_IDS`` (a JSON list of ids:
a path's ``{id}`` takes the next one, each once: the run ends when they run out) and
``PERFLAB_LOAD_SECRET`` (sign each path as the payment provider does, ``shop.signatures``).
``PERFLAB_LOAD_HEADERS`` (a JSON object) adds the same headers to every request.
``PERFLAB_LOAD_ERRORS`` names a file that gets, as JSON, each distinct failure of the measured
window and how often it happened (Locust's own failure statistics), so a failed request says why.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, constant, events, task
from locust.exception import StopUser

from shop import signatures

PATHS: list[str] = json.loads(os.environ.get("PERFLAB_LOAD_PATHS") or '["/"]')
LIMIT = int(os.environ.get("PERFLAB_LOAD_REQUESTS") or 0)
WARMUP_S = float(os.environ.get("PERFLAB_LOAD_WARMUP_S") or 0)
MARK = os.environ.get("PERFLAB_LOAD_MARK")
METHOD = os.environ.get("PERFLAB_LOAD_METHOD") or "GET"
IDS: list[int] = json.loads(os.environ.get("PERFLAB_LOAD_IDS") or "[]")
SECRET = os.environ.get("PERFLAB_LOAD_SECRET") or ""
HEADERS: dict[str, str] = json.loads(os.environ.get("PERFLAB_LOAD_HEADERS") or "{}")
ERRORS = os.environ.get("PERFLAB_LOAD_ERRORS")
_turns = itertools.count()
_measured = itertools.count()
_measuring = False


@events.test_start.add_listener
def _warm_up_then_measure(environment: Any, **_: Any) -> None:
    def begin() -> None:
        global _measuring
        environment.runner.stats.reset_all()
        _measuring = True
        if MARK:
            Path(MARK).touch()

    gevent.spawn_later(WARMUP_S, begin)


@events.quitting.add_listener
def _write_errors(environment: Any, **_: Any) -> None:
    if not ERRORS:
        return
    errors = [
        {"method": error.method, "name": error.name, "error": str(error.error),
         "occurrences": error.occurrences}
        for error in environment.runner.stats.errors.values()
    ]
    Path(ERRORS).write_text(json.dumps(errors))


class Visitor(FastHttpUser):
    """A client that asks for the next path the moment the last one arrives."""

    wait_time = constant(0)

    @task
    def visit(self) -> None:
        turn = next(_turns)
        measured = next(_measured) if _measuring else -1
        if (LIMIT and measured >= LIMIT) or (IDS and turn >= len(IDS)):
            # The first user past the limit (or the last id) ends the run for all.
            if (LIMIT and measured == LIMIT) or (IDS and turn == len(IDS)):
                # From a greenlet of its own: quit() stops every user, this one included.
                gevent.spawn(self.environment.runner.quit)
            raise StopUser
        path = name = PATHS[turn % len(PATHS)]
        if IDS:
            path = path.replace("{id}", str(IDS[turn]))
        headers = dict(HEADERS)
        if SECRET:
            headers[signatures.HEADER] = signatures.sign(SECRET, path)
        self.client.request(METHOD, path, name=name, headers=headers or None)
