"""A throwaway database for a benchmark: on WATTLINE_DATABASE_URL's server, else the
embedded server under WATTLINE_HOME; dropped afterwards."""

import contextlib
import secrets

import sqlalchemy as sa

from orchestration.database import Database
from orchestration.runtime import ensure_warehouse
from orchestration.settings import get_settings
from resources.postgres import ensure_warehouse_schema


@contextlib.contextmanager
def fresh_database():
    server = ensure_warehouse(get_settings())
    database = server.with_name(f"wattline_bench_{secrets.token_hex(4)}")
    admin = sa.create_engine(server.sqlalchemy_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{database.name}"'))
    try:
        ensure_warehouse_schema(database)
        yield Database(url=database.url, embedded=server.embedded)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{database.name}" with (force)'))
        admin.dispose()
