"""An events table twice: as one table, and partitioned by month on ``created``.

``PartitionedEvent`` is django-postgres-extra's partitioned model where that library is in use
(``events/partitioned_extra.py``; it requires Django < 6.0); elsewhere it is a plain model over
the same table (``events/partitioned_sql.py``), which the migration then makes with declarative
partitioning in plain SQL. Either way PostgreSQL wants the partition key in the primary key, so
its key is ``(created, id)``, and ``id`` comes from a sequence (an auto field must be a primary
key on its own). Each lives in its own module so that its source can be shown as it is.
"""

from __future__ import annotations

import importlib.util

from django.conf import settings
from django.db import models

#: Whether django-postgres-extra is in use: installed (it is not on Django 6.0+) and the backend
#: of a database (the ``events`` alias). A process configured without one (a served shop's
#: workers) gets the plain model, which it never queries.
PSQLEXTRA = importlib.util.find_spec("psqlextra") is not None and any(
    "psqlextra" in db.get("ENGINE", "") for db in settings.DATABASES.values()
)

#: The sequence that numbers partitioned events; the migration creates it.
ID_SEQUENCE = "events_partitionedevent_id_seq"


class Kind(models.IntegerChoices):
    PAGE_VIEW = 0, "page view"
    SEARCH = 1, "search"
    ADD_TO_CART = 2, "add to cart"
    CHECKOUT = 3, "checkout"
    PAYMENT = 4, "payment"


class EventColumns(models.Model):
    """Columns both tables share: what happened, to whom, when."""

    created = models.DateTimeField()
    user_id = models.IntegerField()
    kind = models.SmallIntegerField(choices=Kind.choices)

    class Meta:
        abstract = True


class Event(EventColumns):
    """Every event in one table, with an index on ``created`` as a table this size has."""

    class Meta:
        indexes = [models.Index(fields=["created"], name="event_created_idx")]


#: The database numbers partitioned events from ``ID_SEQUENCE`` (``nextval``), as a bigserial.
NEXT_ID = models.Func(
    models.Value(ID_SEQUENCE), function="nextval", output_field=models.BigIntegerField()
)

# Below the shared columns, which the partitioned model's module imports from here.
if PSQLEXTRA:
    from events.partitioned_extra import PartitionedEvent
else:
    from events.partitioned_sql import PartitionedEvent

__all__ = ["ID_SEQUENCE", "NEXT_ID", "PSQLEXTRA", "Event", "EventColumns", "Kind",
           "PartitionedEvent"]
