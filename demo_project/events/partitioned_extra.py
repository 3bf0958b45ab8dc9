"""The partitioned events model, with django-postgres-extra (Django < 6.0, its backend in use)."""

from __future__ import annotations

from django.db import models
from psqlextra.models import PostgresPartitionedModel
from psqlextra.types import PostgresPartitioningMethod

from events.models import NEXT_ID, EventColumns


class PartitionedEvent(EventColumns, PostgresPartitionedModel):
    """The same events, one partition per month of ``created``."""

    pk = models.CompositePrimaryKey("created", "id")
    id = models.BigIntegerField(db_default=NEXT_ID)

    class PartitioningMeta:
        method = PostgresPartitioningMethod.RANGE
        key = ["created"]
