"""Marts that Python assets write (the forecast, the DR baseline and plan), beside the
ones dbt builds: their DDL runs under the DDL lock, their rows go in as one JSON array
typed by the table's own row type, and their column comments become the asset's
column schema in the Dagster UI."""

import json

from psycopg2.extensions import cursor as Cursor

from resources.postgres import DDL_LOCK_KEY, PostgresResource

COLUMNS = """
select a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum)
from pg_attribute a
where a.attrelid = %(table)s::regclass and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""


def create_tables(postgres: PostgresResource, ddl: str) -> None:
    """Run `ddl` (create … if not exists, comments) once at a time across processes."""
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
        cur.execute(ddl)


def as_json(rows: list[dict]) -> str:
    """Rows as the JSON array the replace statements read (timestamps ISO 8601, numpy
    numbers as plain ones)."""
    return json.dumps(rows, default=lambda value: value.isoformat() if hasattr(value, "isoformat") else value.item())


def column_schema(cur: Cursor, table: str):
    """The table's columns with their types and comments, as Dagster metadata."""
    from dagster import TableColumn, TableSchema

    cur.execute(COLUMNS, {"table": table})
    return TableSchema(columns=[TableColumn(name, type_, description or "") for name, type_, description in cur.fetchall()])
