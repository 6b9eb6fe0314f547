"""Window-replacing COPY loads into day-partitioned raw tables.

A load streams the source's CSV into a temporary staging table with COPY, then in
the same transaction deletes the target's rows in the window and inserts the staged
ones. A rerun or an overlapping backfill therefore replaces, never duplicates, and a
failure anywhere (source cut mid-stream, bad data, crash) rolls back to the previous
state of the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

import sqlalchemy as sa
from psycopg2 import sql

from resources.http import SourceError

PARTITION_LOCK_KEY = 7_201_002


@dataclass(frozen=True)
class LoadResult:
    rows_received: int
    rows_loaded: int
    rows_outside_window: int
    rows_duplicate: int
    rows_replaced: int


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


def ensure_day_partitions(engine: sa.Engine, table: str, start: datetime, end: datetime) -> list[str]:
    """Create the UTC-day partitions of `schema.table` that cover [start, end)."""
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
                        "for values from (%s) to (%s)"
                    ).format(part=sql.Identifier(schema, partition), parent=sql.Identifier(schema, name)),
                    (day, day + timedelta(days=1)),
                )
                created.append(partition)
                day += timedelta(days=1)
    return created


def replace_window(
    engine: sa.Engine,
    *,
    table: str,
    csv_body: BinaryIO,
    columns: Sequence[str],
    time_column: str,
    key_columns: Sequence[str],
    start: datetime,
    end: datetime,
) -> LoadResult:
    """Replace the rows of `table` with `start <= time_column < end` by the CSV's rows.

    `csv_body` is positioned after the header and holds `columns` in that order.
    Rows outside the window are counted and ignored; repeated keys keep one row.
    """
    schema, name = table.split(".")
    target = sql.Identifier(schema, name)
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    keys = sql.SQL(", ").join(map(sql.Identifier, key_columns))
    ts = sql.Identifier(time_column)
    ensure_day_partitions(engine, table, start, end)

    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute(
                sql.SQL("create temp table _stage (like {t} including defaults) on commit drop").format(t=target)
            )
            cur.copy_expert(
                sql.SQL("copy _stage ({cols}) from stdin with (format csv)").format(cols=cols).as_string(cur),
                csv_body,
                size=1 << 20,
            )
            received = cur.rowcount
            cur.execute(
                sql.SQL("delete from {t} where {ts} >= %s and {ts} < %s").format(t=target, ts=ts),
                (start, end),
            )
            replaced = cur.rowcount
            cur.execute(
                sql.SQL(
                    "insert into {t} ({cols}) select distinct on ({keys}) {cols} from _stage "
                    "where {ts} >= %s and {ts} < %s order by {keys}"
                ).format(t=target, cols=cols, keys=keys, ts=ts),
                (start, end),
            )
            loaded = cur.rowcount
            cur.execute(
                sql.SQL("select count(*) from _stage where not ({ts} >= %s and {ts} < %s)").format(ts=ts),
                (start, end),
            )
            outside = cur.fetchone()[0]
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()
    return LoadResult(
        rows_received=received,
        rows_loaded=loaded,
        rows_outside_window=outside,
        rows_duplicate=received - loaded - outside,
        rows_replaced=replaced,
    )

