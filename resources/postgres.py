"""The Wattline warehouse in PostgreSQL, as a Dagster resource."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from importlib import resources as package_files

import sqlalchemy as sa
from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from orchestration.database import Database

# Serialises DDL across processes: concurrent `create ... if not exists` can still
# collide on PostgreSQL's catalog.
DDL_LOCK_KEY = 7_201_001


def ensure_warehouse_schema(database: Database) -> None:
    """Create the raw and ops schemas and tables if they are missing."""
    ddl = package_files.files("resources").joinpath("raw_schema.sql").read_text()
    engine = sa.create_engine(database.sqlalchemy_url)
    try:
        with engine.begin() as conn, conn.connection.driver_connection.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
            # No parameters: the DDL's own % signs (format() patterns) stay literal.
            cur.execute(ddl)
    finally:
        engine.dispose()


class PostgresResource(ConfigurableResource):
    """The warehouse: a SQLAlchemy engine and raw psycopg2 connections for COPY.

    It also exports the connection to dbt's profile variables, so the dbt CLI run in
    the same step writes to the same database.
    """

    url: str | None = Field(
        default=None,
        description="libpq URL; unset = WATTLINE_DATABASE_URL, else the embedded server.",
    )

    _database: Database | None = PrivateAttr(default=None)
    _engine: sa.Engine | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        from orchestration.runtime import ensure_warehouse
        from orchestration.settings import get_settings

        if self.url:
            self._database = Database(url=self.url)
            ensure_warehouse_schema(self._database)
        else:
            self._database = ensure_warehouse(get_settings())
        os.environ.update(self._database.dbt_env())

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def database(self) -> Database:
        if self._database is None:
            raise RuntimeError("PostgresResource used outside a Dagster execution")
        return self._database

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = sa.create_engine(self.database.sqlalchemy_url, pool_pre_ping=True)
        return self._engine

    @contextlib.contextmanager
    def connection(self) -> Iterator[sa.Connection]:
        """A connection in a transaction: committed on success, rolled back on any error."""
        with self.engine.begin() as conn:
            yield conn
