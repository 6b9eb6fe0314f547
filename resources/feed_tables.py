"""Replacing a window of a small source table in one transaction.

Weather, prices and carbon intensity come as a few thousand rows per day: they are
passed to PostgreSQL as one JSON array and typed by the table's own row type
(`jsonb_populate_recordset`), so the columns and their types live in raw_schema.sql
only. Delete and insert share a transaction, and an advisory lock per table and
window keeps two runs of the same partition from interleaving.
"""

import json
from datetime import date, datetime

from psycopg2 import sql

from resources.postgres import PostgresResource


def _json_default(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def replace_window(
    postgres: PostgresResource,
    table: str,
    rows: list[dict],
    where: str,
    params: dict,
    lock_key: str,
    rejected: list[dict] = (),
) -> int:
    """Delete the rows of `table` (schema-qualified, e.g. "raw.grid_prices") matching
    `where` (SQL over the table's columns with %(name)s parameters) and insert `rows`,
    atomically; the points the parser `rejected` ({raw, reason}) replace this feed and
    window's in raw.feed_rejected in the same transaction. Returns the rows deleted."""
    schema, name = table.split(".")
    columns = list(rows[0]) if rows else []
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"{table}/{lock_key}",))
        cur.execute(sql.SQL("delete from {} where ").format(sql.Identifier(schema, name)) + sql.SQL(where), params)
        deleted = cur.rowcount
        if rows:
            column_list = sql.SQL(", ").join(map(sql.Identifier, columns))
            cur.execute(
                sql.SQL("insert into {table} ({columns}) select {columns} from jsonb_populate_recordset(null::{table}, %(rows)s::jsonb)").format(
                    table=sql.Identifier(schema, name), columns=column_list
                ),
                {"rows": json.dumps(rows, default=_json_default)},
            )
        cur.execute("delete from raw.feed_rejected where feed = %s and window_key = %s", (table, lock_key))
        if rejected:
            cur.executemany(
                "insert into raw.feed_rejected (feed, window_key, raw, reason) values (%s, %s, %s::jsonb, %s)",
                [(table, lock_key, json.dumps(r["raw"], default=_json_default), r["reason"]) for r in rejected],
            )
    return deleted


def window_metadata(postgres: PostgresResource, table: str, time_column: str, start: datetime, end: datetime) -> dict:
    """What [start, end) of `table` holds after a load, as materialisation metadata: its
    row count and the first and last time in it."""
    from dagster import MetadataValue

    schema, name = table.split(".")
    query = sql.SQL("select count(*), min({t}), max({t}) from {table} where {t} >= %(start)s and {t} < %(end)s").format(
        t=sql.Identifier(time_column), table=sql.Identifier(schema, name)
    )
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(query, {"start": start, "end": end})
        count, first, last = cur.fetchone()
    return {
        "dagster/row_count": count,
        "first_row_at": MetadataValue.timestamp(first) if first else "none",
        "last_row_at": MetadataValue.timestamp(last) if last else "none",
    }
