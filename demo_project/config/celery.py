"""The shop's Celery application: ``celery -A config.celery worker``.

Settings come from Django's, under the ``CELERY_`` prefix (``CELERY_BROKER_URL``...). Without a
broker the tasks run eagerly, in the process that queues them: the page then waits for the
slow work as before, which is what a shop without a worker gets.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["shop"])
