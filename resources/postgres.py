"""The Wattline warehouse in PostgreSQL, as a Dagster resource."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from importlib import resources as package_files

import sqlalchemy as sa
from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from orchestration.database import Database
from resources.sql_files import statements

log = logging.getLogger(__name__)

# Serialises DDL across processes: concurrent `create ... if not exists` can still
# collide on PostgreSQL's catalog.
DDL_LOCK_KEY = 7_201_001

# The read-only role BI tools log in as (resources/bi_access.sql).
BI_ROLE = "wattline_bi"


def ensure_warehouse_schema(database: Database) -> None:
    """Create the raw and ops schemas and tables if they are missing."""
    ddl = package_files.files("resources").joinpath("raw_schema.sql").read_text()
    engine = sa.create_engine(database.sqlalchemy_url)
    try:
        with engine.begin() as conn, conn.connection.driver_connection.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
            # No parameters: the DDL's own % signs (format() patterns) stay literal.
            cur.execute(ddl)
            # The DR marts the Python assets write are dbt sources too: they exist from the start.
            cur.execute(statements("dr_tables.sql")["create_tables"])
    finally:
        engine.dispose()


def ensure_bi_access(database: Database, password: str | None = None) -> bool:
    """Let the role `wattline_bi` read the `marts` schema and nothing else: create it
    (LOGIN) if missing, set its password when one is given (an unset password leaves the
    role's as it is), grant SELECT on marts' tables, now and by default on those the
    connecting user (dbt's: the same URL) creates later, and revoke whatever else it or
    PUBLIC holds on Wattline's schemas.

    Returns False, with a warning, when the role is missing and this user may not create
    roles: BI access is then a DBA's step (`create role wattline_bi login`), and loading
    goes on without it.
    """
    import psycopg2
    from psycopg2.extensions import encrypt_password

    sql = statements("bi_access.sql")
    engine = sa.create_engine(database.sqlalchemy_url)
    try:
        with engine.begin() as conn:
            raw = conn.connection.driver_connection
            with raw.cursor() as cur:
                cur.execute("select pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
                cur.execute(sql["role_state"])
                exists, can_create = cur.fetchone()
                if not exists:
                    if not can_create:
                        log.warning(
                            "role %s is missing and %s may not create roles: BI tools cannot read "
                            "the marts until a DBA runs `create role %s login`",
                            BI_ROLE, database.libpq_params()["user"], BI_ROLE,
                        )
                        return False
                    cur.execute(sql["create_role"])
                if password is not None:
                    # Sent as a SCRAM verifier computed here: the password itself never
                    # reaches the server, its statement log or this process's logs.
                    verifier = encrypt_password(password, BI_ROLE, raw)
                    cur.execute("savepoint bi_password")
                    try:
                        cur.execute(sql["set_password"], {"password": verifier})
                    except psycopg2.errors.InsufficientPrivilege:
                        cur.execute("rollback to savepoint bi_password")
                        log.warning("may not set the password of role %s: left as it was", BI_ROLE)
                del raw.notices[:]
                cur.execute(sql["grants"])
                for notice in raw.notices:
                    if notice.startswith("WARNING"):
                        log.warning(notice.strip())
    finally:
        engine.dispose()
    return True


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
            # Role and grants are the bootstrap's (`wattline up|demo|db start`), not every run's.
            self._database = ensure_warehouse(get_settings(), bi_access=False)
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
