"""The partitioned events model without django-postgres-extra: its migration's SQL partitions it."""

from __future__ import annotations

from django.db import models

from events.models import NEXT_ID, EventColumns


class PartitionedEvent(EventColumns):
    """The same events, one partition per month of ``created`` (see the migration)."""

    pk = models.CompositePrimaryKey("created", "id")
    id = models.BigIntegerField(db_default=NEXT_ID)
