"""What a Celery worker ``perflab.tasks_worker`` starts loads: ``celery -A perflab.celery_app``.

The lab's settings first (its database, the broker, the mail server: ``perflab.served``), then
the shop's Celery application. When the worker is ready to take tasks it creates the file
``PERFLAB_READY_FILE`` names, which is how its starter knows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery.signals import worker_ready

from perflab.served import apply_overrides

apply_overrides()

import django  # noqa: E402  (after the overrides: Django reads the settings once)

django.setup()

from django.db import connections  # noqa: E402

# Open each database once now: a SQLite file is switched to WAL here (perflab.served), before
# a task reads it while another process is writing, which WAL allows and the default forbids.
for connection in connections.all():
    connection.ensure_connection()
    connection.close()

from config.celery import app  # noqa: E402

__all__ = ["app"]


@worker_ready.connect
def _say_ready(**_: Any) -> None:
    ready = os.environ.get("PERFLAB_READY_FILE")
    if ready:
        Path(ready).touch()
