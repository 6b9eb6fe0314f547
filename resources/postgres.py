"""The Wattline warehouse in PostgreSQL, as a Dagster resource."""

from __future__ import annotations

import contextlib
import hashlib
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
    """Create the raw and ops schemas and tables, and the DR marts, if they are missing,
    or bring them to this version of their DDL.

    The DDL runs once per version of its text (`resources/warehouse_schema.sql` keeps
    the digest): a warehouse already at it is only read, one row and no lock. Every
    run's warehouse resource calls this, and the DDL itself locks the tables it names
    even when there is nothing to do (`alter table … add column if not exists` takes
    an exclusive lock, `create index if not exists` a share lock): run at every step,
    it deadlocked against the runs writing those tables."""
    ddl = [
        package_files.files("resources").joinpath("raw_schema.sql").read_text(),
        # The DR marts the Python assets write are dbt sources too: they exist from the start.
        statements("dr_tables.sql")["create_tables"],
    ]
    digest = hashlib.sha256("\n".join(ddl).encode()).hexdigest()
    version = statements("warehouse_schema.sql")
    engine = sa.create_engine(database.sqlalchemy_url)
    try:
        with engine.begin() as conn, conn.connection.driver_connection.cursor() as cur:
            if _applied_digest(cur, version) == digest:
                return
            cur.execute("select pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
            if _applied_digest(cur, version) == digest:
                return  # another process applied it while this one waited
            for script in ddl:
                # No parameters: the DDL's own % signs (format() patterns) stay literal.
                cur.execute(script)
            cur.execute(version["record"], {"digest": digest})
    finally:
        engine.dispose()


def _applied_digest(cur, version: dict[str, str]) -> str | None:
    cur.execute(version["tracked"])
    if not cur.fetchone()[0]:
        return None
    cur.execute(version["applied"])
    row = cur.fetchone()
    return row[0] if row else None


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
