"""A throwaway database for a benchmark: on WATTLINE_DATABASE_URL's server, else the
embedded server under WATTLINE_HOME; dropped afterwards, and an embedded server the
benchmark started is stopped again (it would otherwise outlive the benchmark)."""

import contextlib
import secrets

import sqlalchemy as sa

from orchestration import embedded_postgres
from orchestration.database import Database
from orchestration.runtime import ensure_warehouse
from orchestration.settings import get_settings
from resources.postgres import ensure_warehouse_schema


@contextlib.contextmanager
def fresh_database():
    settings = get_settings()
    started_here = not settings.database_url and embedded_postgres.running_url(settings.home) is None
    server = ensure_warehouse(settings)
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
        if started_here:
            embedded_postgres.stop(settings.home)
