"""Create the events tables: one plain, one partitioned by month (a partition per month of 2025).

With django-postgres-extra (Django < 6.0) the partitioned table comes from its operations; without
it (Django 6.x), from the same statements in plain SQL (``PARTITIONED_SQL``), with the model's
state declared beside them. Both make the same table, partitions and names.
"""

from __future__ import annotations

from django.db import migrations, models

from events.models import ID_SEQUENCE, PSQLEXTRA

#: The months the table starts with: one partition each, named as django-postgres-extra names
#: monthly partitions ("2025_jan"), so both ways give the same tables.
MONTHS = [
    (f"2025_{name}", f"2025-{month:02d}-01", f"{2025 + month // 12}-{month % 12 + 1:02d}-01")
    for month, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
        start=1,
    )
]

KINDS = [(0, "page view"), (1, "search"), (2, "add to cart"), (3, "checkout"), (4, "payment")]


def partitioned_fields() -> list[tuple[str, models.Field]]:
    return [
        ("created", models.DateTimeField()),
        ("user_id", models.IntegerField()),
        ("kind", models.SmallIntegerField(choices=KINDS)),
        ("pk", models.CompositePrimaryKey(
            "created", "id", blank=True, editable=False, primary_key=True, serialize=False
        )),
        ("id", models.BigIntegerField(db_default=models.Func(
            models.Value(ID_SEQUENCE), function="nextval", output_field=models.BigIntegerField()
        ))),
    ]


#: Declarative partitioning in plain SQL: the parent table says how rows are split (PARTITION BY
#: RANGE), each partition which range it holds. The primary key must include the partition key.
PARTITIONED_SQL = [
    f"CREATE SEQUENCE {ID_SEQUENCE}",
    f"""CREATE TABLE events_partitionedevent (
    created timestamp with time zone NOT NULL,
    user_id integer NOT NULL,
    kind smallint NOT NULL,
    id bigint DEFAULT nextval('{ID_SEQUENCE}') NOT NULL,
    PRIMARY KEY (created, id)
) PARTITION BY RANGE (created)""",
    *(
        f"CREATE TABLE events_partitionedevent_{name} PARTITION OF events_partitionedevent\n"
        f"    FOR VALUES FROM ('{start} 00:00:00+00') TO ('{end} 00:00:00+00')"
        for name, start, end in MONTHS
    ),
    f"ALTER SEQUENCE {ID_SEQUENCE} OWNED BY events_partitionedevent.id",
]

event = migrations.CreateModel(
    name="Event",
    fields=[
        ("id", models.BigAutoField(
            auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
        )),
        ("created", models.DateTimeField()),
        ("user_id", models.IntegerField()),
        ("kind", models.SmallIntegerField(choices=KINDS)),
    ],
    options={"indexes": [models.Index(fields=["created"], name="event_created_idx")]},
)

if PSQLEXTRA:
    import psqlextra.manager.manager
    import psqlextra.models.partitioned
    import psqlextra.types
    from psqlextra.backend.migrations.operations import (
        PostgresAddRangePartition,
        PostgresCreatePartitionedModel,
    )

    partitioned: list[migrations.operations.base.Operation] = [
        migrations.RunSQL(f"CREATE SEQUENCE {ID_SEQUENCE}", f"DROP SEQUENCE {ID_SEQUENCE}"),
        PostgresCreatePartitionedModel(
            name="PartitionedEvent",
            fields=partitioned_fields(),
            options={"abstract": False},
            partitioning_options={
                "method": psqlextra.types.PostgresPartitioningMethod.RANGE,
                "key": ["created"],
            },
            bases=(psqlextra.models.partitioned.PostgresPartitionedModel,),
            managers=[("objects", psqlextra.manager.manager.PostgresManager())],
        ),
        *(
            PostgresAddRangePartition(
                model_name="PartitionedEvent", name=name,
                from_values=f"{start} 00:00:00+00", to_values=f"{end} 00:00:00+00",
            )
            for name, start, end in MONTHS
        ),
        migrations.RunSQL(f"ALTER SEQUENCE {ID_SEQUENCE} OWNED BY events_partitionedevent.id",
                          migrations.RunSQL.noop),
    ]
else:
    partitioned = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(PARTITIONED_SQL, "DROP TABLE events_partitionedevent"),
            ],
            state_operations=[
                migrations.CreateModel(
                    name="PartitionedEvent",
                    fields=partitioned_fields(),
                    options={"abstract": False},
                ),
            ],
        ),
    ]


class Migration(migrations.Migration):
    initial = True

    dependencies: list[tuple[str, str]] = []

    operations = [event, *partitioned]
