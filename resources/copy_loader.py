"""Pieces every COPY load shares: checking a CSV header, creating day partitions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import BinaryIO

import sqlalchemy as sa
from psycopg2 import sql

from resources.http import SourceError

PARTITION_LOCK_KEY = 7_201_002


def read_csv_header(stream: BinaryIO, expected: Sequence[str]) -> list[str]:
    """Consume the header line and check it names exactly the expected columns (any order)."""
    line = stream.readline(64 * 1024).decode("utf-8").strip()
    columns = [c.strip() for c in line.split(",")] if line else []
    missing = [c for c in expected if c not in columns]
    unexpected = [c for c in columns if c not in expected]
    if missing or unexpected:
        raise SourceError(
            f"CSV header {columns} does not match the expected columns: "
            f"missing {missing}, unexpected {unexpected}"
        )
    return columns


def ensure_day_partitions(engine: sa.Engine, table: str, start: datetime, end: datetime, column: str = "ts") -> list[str]:
    """Create the UTC-day partitions of `schema.table` that cover [start, end), each
    itself partitioned by range on `column`: the loader attaches the hours."""
    schema, name = table.split(".")
    created = []
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    with engine.begin() as conn:
        # In its own short transaction: attaching a partition locks the parent table.
        conn.execute(sa.text("select pg_advisory_xact_lock(:k)"), {"k": PARTITION_LOCK_KEY})
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            while day < end:
                partition = f"{name}_{day:%Y%m%d}"
                cur.execute(
                    sql.SQL(
                        "create table if not exists {part} partition of {parent} "
                        "for values from (%s) to (%s) partition by range ({column})"
                    ).format(
                        part=sql.Identifier(schema, partition),
                        parent=sql.Identifier(schema, name),
                        column=sql.Identifier(column),
                    ),
                    (day, day + timedelta(days=1)),
                )
                created.append(partition)
                day += timedelta(days=1)
    return created
