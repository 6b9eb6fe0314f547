"""The read-only role BI tools log in as: `wattline_bi` reads the marts, tables dbt
creates or re-creates after the bootstrap included, and nothing else."""

import base64
import hashlib
import hmac
import logging
import secrets

import psycopg2
import pytest
import sqlalchemy as sa
from psycopg2 import errors

from orchestration.runtime import ensure_warehouse
from orchestration.settings import load_settings
from resources.postgres import BI_ROLE, ensure_warehouse_schema
from tests.conftest import create_database, drop_database, missing_prerequisite

PASSWORD = f"bi-{secrets.token_urlsafe(12)}"


def bootstrap(database, password: str | None = PASSWORD):
    """What `wattline up|demo|db start` do to the warehouse, for this database."""
    return ensure_warehouse(load_settings(database_url=database.url, bi_password=password))


def owner_sql(database, *statements: str) -> None:
    """Run as the role that bootstraps and runs dbt."""
    engine = sa.create_engine(database.sqlalchemy_url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


@pytest.fixture(scope="module")
def bi_sibling(pg_server):
    """Another database of the same owner on the server, as Dagster's storage is."""
    sibling = create_database(pg_server, "dagster_bi_test")
    owner_sql(sibling, "create table public.event_logs as select 'a run''s events' as event")
    yield sibling
    drop_database(pg_server, sibling)


@pytest.fixture(scope="module")
def bi_warehouse(pg_server, bi_sibling):
    """A warehouse of its own (the grants are per database), bootstrapped once after a
    marts table already existed, as on a warehouse from before the role."""
    database = create_database(pg_server, "wattline_bi_test")
    ensure_warehouse_schema(database)
    owner_sql(
        database,
        "create schema if not exists marts",  # the bootstrap creates it for the DR tables
        "create table marts.fct_before as select 1 as x",
        "create schema staging",
        "create table staging.stg_x as select 1 as x",
        "create view staging.stg_v as select 1 as x",
        "create schema intermediate",
        "create table intermediate.int_x as select 1 as x",
        "create table ops.alerts_test as select 1 as x",
        "create table public.loose as select 1 as x",
    )
    bootstrap(database)
    # dbt's next run, as the same role: a table the bootstrap has never seen.
    owner_sql(database, "create table marts.fct_after as select 2 as x")
    yield database
    drop_database(pg_server, database)


@pytest.fixture
def bi(bi_warehouse):
    """A psycopg2 connection as wattline_bi, autocommit: one denied statement per test
    step does not poison the next."""
    connection = psycopg2.connect(bi_warehouse.with_user(BI_ROLE, PASSWORD).url)
    connection.autocommit = True
    yield connection
    connection.close()


def scalar(connection, statement: str):
    with connection.cursor() as cur:
        cur.execute(statement)
        return cur.fetchone()[0]


def test_bi_reads_marts_tables_from_before_and_after_the_bootstrap(bi_warehouse, bi):
    assert scalar(bi, "select current_user") == BI_ROLE
    assert scalar(bi, "select x from marts.fct_before") == 1

    # A table created after the bootstrap; one dropped and re-created (dbt's table
    # materialisation); a view.
    owner_sql(
        bi_warehouse,
        "drop table marts.fct_before",
        "create table marts.fct_before as select 3 as x",
        "create view marts.v_after as select 4 as x",
    )
    assert scalar(bi, "select x from marts.fct_after") == 2
    assert scalar(bi, "select x from marts.fct_before") == 3
    assert scalar(bi, "select x from marts.v_after") == 4


@pytest.mark.parametrize(
    "relation",
    ["raw.meter_readings", "raw.facilities", "ops.alerts_test", "staging.stg_x", "staging.stg_v", "intermediate.int_x", "public.loose"],
)
def test_bi_reads_nothing_outside_the_marts(bi, relation):
    with pytest.raises(errors.InsufficientPrivilege):
        scalar(bi, f"select count(*) from {relation}")


@pytest.mark.parametrize(
    "statement",
    [
        "create table marts.bi_made as select 1 as x",
        "create table public.bi_made as select 1 as x",
        "create schema bi_made",
        "insert into marts.fct_after values (9)",
        "delete from marts.fct_after",
        "drop table marts.fct_after",
        "create function raw.bi_made() returns int language sql as 'select 1'",
    ],
)
def test_bi_writes_nothing(bi, statement):
    with pytest.raises(errors.InsufficientPrivilege):
        scalar(bi, statement)


def test_bi_makes_no_temporary_tables(bi):
    """PUBLIC's TEMP on the warehouse is taken back: wattline_bi's own is not enough to revoke."""
    with pytest.raises(errors.InsufficientPrivilege):
        scalar(bi, "create temp table bi_scratch as select 1 as x")
    with pytest.raises(errors.InsufficientPrivilege):
        scalar(bi, "create temporary table bi_scratch (x int)")
    assert scalar(bi, "select x from marts.fct_after") == 2


def _connect_as_bi(database):
    connection = psycopg2.connect(database.with_user(BI_ROLE, PASSWORD).url)
    connection.close()


def test_bi_connects_to_the_warehouse_only(pg_server, bi_sibling, bi_warehouse, bi):
    """Not to the server's other databases the bootstrapping user owns (Dagster's runs and
    event logs; the maintenance database `postgres`), where it could list the tables."""
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        _connect_as_bi(bi_sibling)
    engine = sa.create_engine(pg_server.sqlalchemy_url)
    with engine.connect() as conn:
        ours = conn.scalar(sa.text("select datdba = (select oid from pg_roles where rolname = current_user) from pg_database where datname = 'postgres'"))
    engine.dispose()
    if ours:
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            _connect_as_bi(pg_server)
    assert scalar(bi, "select current_database()") == bi_warehouse.name


def test_on_the_embedded_runtime_bi_connects_to_the_warehouse_only(tmp_path, monkeypatch):
    """`wattline up|demo|db start` on a new embedded server: its `dagster` and `postgres`
    databases refuse wattline_bi from the first bootstrap on (Dagster's database is
    created after the warehouse's grants)."""
    from orchestration import embedded_postgres
    from orchestration.runtime import bootstrap as runtime_bootstrap

    home = tmp_path / "home"
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("WATTLINE_DATABASE_URL", raising=False)
    try:
        runtime = runtime_bootstrap(load_settings(home=home, bi_password=PASSWORD))
        assert runtime.warehouse.embedded
        connection = psycopg2.connect(runtime.warehouse.with_user(BI_ROLE, PASSWORD).url)
        try:
            connection.autocommit = True
            assert scalar(connection, "select current_user") == BI_ROLE
            with pytest.raises(errors.InsufficientPrivilege):
                scalar(connection, "create temp table bi_scratch as select 1 as x")
        finally:
            connection.close()
        for name in (runtime.dagster_storage.name, "postgres"):
            with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
                _connect_as_bi(runtime.warehouse.with_name(name))
    finally:
        embedded_postgres.stop(home)


def _catalog(database) -> list[tuple]:
    """Privileges as the catalog holds them, with each row's version (xmin)."""
    engine = sa.create_engine(database.sqlalchemy_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                """
                select 'rel', c.oid::regclass::text, c.xmin::text, c.relacl::text
                from pg_class c join pg_namespace n on n.oid = c.relnamespace
                where n.nspname in ('raw', 'ops', 'staging', 'intermediate', 'marts', 'public')
                union all
                select 'schema', nspname, xmin::text, nspacl::text from pg_namespace
                union all
                select 'default', defaclnamespace::regnamespace::text, xmin::text, defaclacl::text
                from pg_default_acl
                order by 1, 2
                """
            )
        ).all()
    engine.dispose()
    return [tuple(row) for row in rows]


def test_bootstrap_again_changes_nothing_and_takes_back_extra_privileges(bi_warehouse, bi):
    before = _catalog(bi_warehouse)
    bootstrap(bi_warehouse)
    # Not one catalog row rewritten: a rerun never touches tables dbt or a load may be
    # swapping at the same moment.
    assert _catalog(bi_warehouse) == before

    owner_sql(
        bi_warehouse,
        f"grant select on raw.meter_readings to {BI_ROLE}",
        f"grant usage on schema raw, staging to {BI_ROLE}",
        f"grant create on schema marts to {BI_ROLE}",
        f"grant insert, delete on marts.fct_after to {BI_ROLE}",
        "grant usage on schema ops to public",
        "grant create on schema public to public",
    )
    assert scalar(bi, "select count(*) from raw.meter_readings") == 0
    bootstrap(bi_warehouse)

    with pytest.raises(errors.InsufficientPrivilege):
        scalar(bi, "select count(*) from raw.meter_readings")
    with pytest.raises(errors.InsufficientPrivilege):
        scalar(bi, "insert into marts.fct_after values (9)")
    with pytest.raises(errors.InsufficientPrivilege):
        scalar(bi, "create table marts.bi_made as select 1 as x")
    with pytest.raises(errors.InsufficientPrivilege):
        scalar(bi, "create table public.bi_made as select 1 as x")
    with pytest.raises(errors.InsufficientPrivilege):
        scalar(bi, "select count(*) from ops.alerts_test")
    assert scalar(bi, "select x from marts.fct_after") == 2
    assert _catalog(bi_warehouse) != before  # the grants above came and went: rows differ
    settled = _catalog(bi_warehouse)
    bootstrap(bi_warehouse)
    assert _catalog(bi_warehouse) == settled


def _verifier(database) -> str | None:
    engine = sa.create_engine(database.sqlalchemy_url)
    with engine.connect() as conn:
        if not conn.scalar(sa.text("select rolsuper from pg_roles where rolname = current_user")):
            missing_prerequisite("reading pg_authid needs a superuser")
        verifier = conn.scalar(sa.text("select rolpassword from pg_authid where rolname = :r"), {"r": BI_ROLE})
    engine.dispose()
    return verifier


def _scram_matches(verifier: str, password: str) -> bool:
    """RFC 5803: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>."""
    _, params, keys = verifier.split("$")
    iterations, salt = params.split(":")
    _, server_key = keys.split(":")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    expected = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(expected).decode(), server_key)


def test_password_is_set_at_bootstrap_as_a_verifier_and_never_logged(bi_warehouse, caplog):
    caplog.set_level(logging.DEBUG)
    new_password = f"changed-{secrets.token_urlsafe(12)}"
    try:
        bootstrap(bi_warehouse, password=new_password)
        verifier = _verifier(bi_warehouse)
        assert verifier.startswith("SCRAM-SHA-256$") and new_password not in verifier
        assert _scram_matches(verifier, new_password)
        assert new_password not in caplog.text

        # Unset: the password set before stays (a DBA's, or the last bootstrap's).
        bootstrap(bi_warehouse, password=None)
        assert _verifier(bi_warehouse) == verifier
    finally:
        bootstrap(bi_warehouse)
    assert _scram_matches(_verifier(bi_warehouse), PASSWORD)


def test_bi_password_setting_is_secret_and_empty_means_unset(monkeypatch):
    monkeypatch.setenv("WATTLINE_BI_PASSWORD", "s3cret-bi-password")
    settings = load_settings()
    assert settings.bi_password.get_secret_value() == "s3cret-bi-password"
    assert "s3cret-bi-password" not in repr(settings)
    monkeypatch.setenv("WATTLINE_BI_PASSWORD", "")
    assert load_settings().bi_password is None
