"""The load ``perflab.load`` generates: Locust users that GET the paths in turn, without pause.

Run by Locust in its own process (``locust -f``), never imported by a kernel: Locust
monkey-patches the standard library with gevent on import. Its input comes from the
environment: ``PERFLAB_LOAD_PATHS`` (a JSON list of paths, requested in turn) and
``PERFLAB_LOAD_REQUESTS`` (stop after that many requests; 0 for no limit, the run time
then decides). Each user sends its next request as soon as the last one is answered: a
closed loop that finds the server's throughput.
"""

from __future__ import annotations

import itertools
import json
import os

import gevent
from locust import FastHttpUser, constant, task
from locust.exception import StopUser

PATHS: list[str] = json.loads(os.environ.get("PERFLAB_LOAD_PATHS") or '["/"]')
LIMIT = int(os.environ.get("PERFLAB_LOAD_REQUESTS") or 0)
_turns = itertools.count()


class Visitor(FastHttpUser):
    """A client that asks for the next path the moment the last one arrives."""

    wait_time = constant(0)

    @task
    def visit(self) -> None:
        turn = next(_turns)
        if LIMIT and turn >= LIMIT:
            if turn == LIMIT:  # the first user past the limit ends the run for all
                # From a greenlet of its own: quit() stops every user, this one included.
                gevent.spawn(self.environment.runner.quit)
            raise StopUser
        path = PATHS[turn % len(PATHS)]
        self.client.get(path, name=path)
