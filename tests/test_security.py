"""Security review, against real PostgreSQL, HTTP on loopback and Dagster runs:

1. values from outside (a registry's facility and meter ids, readings, a DR event's ids,
   a partition key or range tag) reach the database only as data, or are refused with a
   reason before any SQL runs;
2. `wattline_bi` reads the marts and can do nothing else a login role could try;
3. the webserver, the webhook receiver, the simulator and the embedded PostgreSQL
   listen on loopback (or a Unix socket) unless configured otherwise;
4. secrets come from the environment and land nowhere: not under WATTLINE_HOME, not in
   the Dagster run storage, not in the warehouse, not in an error; a database URL is
   shown with its password masked.
"""

import base64
import csv
import hashlib
import hmac
import io
import json
import os
import secrets
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import psycopg2
import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner
from dagster import DagsterInstance, TimeWindow, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from psycopg2 import errors, sql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from orchestration.database import Database
from orchestration.runtime import DAGSTER_STORAGE_ENV, BootstrapError, bootstrap, ensure_database, ensure_warehouse, write_dagster_yaml
from orchestration.settings import get_settings, load_settings
from resources.postgres import BI_ROLE, ensure_bi_access, ensure_warehouse_schema
from resources.telemetry_api import READING_COLUMNS
from simulator.config import SimulatorConfig
from simulator.server import BackgroundServer, SimulatorServer, create_app
from tests.conftest import create_database, dr_run, drop_database, failure_text, own_warehouse
from tests.support import iso, quarter_hours_ahead

# What an attacker would send for an id: quotes, a statement break, a comment.
HOSTILE = "x'); drop table raw.meters; --"
HOSTILE_FACILITY = f"FAC-{HOSTILE}"
HOSTILE_METER = f"MTR-{HOSTILE}"
UNKNOWN_METER = "'; delete from raw.meters; select '"
HOUR = datetime(2025, 6, 1, 10, tzinfo=UTC)
BI_PASSWORD = f"bi-{secrets.token_urlsafe(12)}"


def scalar(connection, statement: str, params=None):
    with connection.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchone()[0]


def table_exists(engine: sa.Engine, name: str) -> bool:
    with engine.connect() as conn:
        return conn.scalar(sa.text("select to_regclass(:t)"), {"t": name}) is not None


@pytest.fixture(scope="module")
def scratch(pg_server):
    """A warehouse of this module's own: the hostile registry below must not leak into
    other modules' worlds. Yields (database, engine)."""
    with own_warehouse(pg_server, "wattline_sec") as world:
        yield world


@pytest.fixture
def env(monkeypatch):
    """Settings from this test's environment; the process's environment and settings
    put back afterwards (bootstrap() exports DAGSTER_HOME and the connection)."""
    saved = dict(os.environ)
    get_settings.cache_clear()
    yield monkeypatch
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()


# --- 1. values from outside reach SQL only as data ------------------------------------


def hostile_headend() -> Starlette:
    """A meter head-end whose ids are SQL: the registry and an hour of 15-minute readings
    for its one meter, plus a reading from a meter it never registered."""
    facility = {
        "facility_id": HOSTILE_FACILITY, "name": "Robert'); drop table raw.facilities; --", "archetype": "office",
        "timezone": "UTC", "latitude": 51.5, "longitude": -0.1, "contract_demand_kw": 100.0,
        "price_zone": "Z'; --", "grid_zone": 'GB"; drop schema raw cascade; --',
    }
    meter = {"meter_id": HOSTILE_METER, "facility_id": HOSTILE_FACILITY, "energy_source": "grid", "end_use": "hvac', null); --", "interval_s": 900}

    async def facilities(request: Request):
        return JSONResponse([facility])

    async def meters(request: Request):
        return JSONResponse([meter])

    async def readings(request: Request):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(READING_COLUMNS)
        for quarter in range(4):
            ts = f"{HOUR + timedelta(minutes=15 * quarter):%Y-%m-%dT%H:%M:%SZ}"
            writer.writerow([ts, HOSTILE_METER, HOSTILE_FACILITY, 900, 2.5, 10.0, 3.0, 230.0, 43.5, 0.95, 50.0, "grid"])
        writer.writerow([f"{HOUR:%Y-%m-%dT%H:%M:%SZ}", UNKNOWN_METER, HOSTILE_FACILITY, 900, 1.0, 4.0, 1.0, 230.0, 17.4, 0.95, 50.0, "grid"])
        return Response(out.getvalue(), media_type="text/csv")

    return Starlette(routes=[
        Route("/v1/facilities", facilities), Route("/v1/meters", meters), Route("/v1/readings", readings),
    ])


def test_hostile_registry_and_reading_ids_are_stored_verbatim_as_data(scratch):
    from assets.registry import facilities, meters
    from assets.telemetry import meter_readings
    from resources.postgres import PostgresResource
    from resources.telemetry_api import TelemetryApiResource

    database, engine = scratch
    with BackgroundServer(hostile_headend()) as headend:
        resources = {"postgres": PostgresResource(url=database.url), "telemetry_api": TelemetryApiResource(base_url=headend.url, max_retries=0)}
        assert materialize([facilities, meters], resources=resources).success
        result = materialize([meter_readings], resources=resources, partition_key=f"{HOUR:%Y-%m-%d-%H:%M}")
        assert result.success, failure_text(result)

    # Every table is still there, and every id is stored exactly as the source sent it.
    for table in ("raw.meters", "raw.facilities", "raw.meter_readings", "raw.meter_readings_rejected"):
        assert table_exists(engine, table), table
    with engine.connect() as conn:
        facility = conn.execute(sa.text("select * from raw.facilities")).mappings().one()
        assert (facility["facility_id"], facility["name"]) == (HOSTILE_FACILITY, "Robert'); drop table raw.facilities; --")
        assert (facility["price_zone"], facility["grid_zone"]) == ("Z'; --", 'GB"; drop schema raw cascade; --')
        meter = conn.execute(sa.text("select meter_id, facility_id, end_use, active from raw.meters")).one()
        assert tuple(meter) == (HOSTILE_METER, HOSTILE_FACILITY, "hvac', null); --", True)
        loaded = conn.execute(sa.text(
            "select meter_id, facility_id, count(*) from raw.meter_readings where ts >= :s and ts < :e group by 1, 2"
        ), {"s": HOUR, "e": HOUR + timedelta(hours=1)}).all()
        assert [tuple(row) for row in loaded] == [(HOSTILE_METER, HOSTILE_FACILITY, 4)]
        # The reading of an unregistered meter is quarantined with the rule, its id as delivered.
        rejected = conn.execute(sa.text("select reason, meter_id from raw.meter_readings_rejected")).all()
        assert [tuple(row) for row in rejected] == [("unknown_meter", UNKNOWN_METER)]
    assert result.get_asset_materialization_events()[0].materialization.metadata["rejected/unknown_meter"].value == 1


SECRET_KEY = secrets.token_bytes(32)
WEBHOOK_SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()


def signed_post(url: str, body: dict) -> requests.Response:
    """A DR notification signed per Standard Webhooks, by hand."""
    raw = json.dumps(body).encode()
    msg_id, stamp = f"msg_{uuid.uuid4().hex}", int(time.time())
    digest = hmac.new(SECRET_KEY, f"{msg_id}.{stamp}.".encode() + raw, hashlib.sha256).digest()
    headers = {
        "content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(stamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
    return requests.post(f"{url}/webhooks/utility/dr-notification", data=raw, headers=headers, timeout=10)


def test_a_dr_event_with_hostile_ids_is_refused_with_a_reason_and_stores_nothing(scratch):
    from sensors.webhook_app import ReceiverConfig
    from sensors.webhook_app import create_app as receiver_app

    database, engine = scratch
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into raw.facilities (facility_id, name, timezone) values ('SEC-F1', 'Plain', 'UTC') on conflict do nothing"
        ))

    start = quarter_hours_ahead(8)  # two hours ahead, as in the receiver's tests

    def event(**changes):
        return {"event_id": f"EVT-{uuid.uuid4().hex[:8]}", "facility_ids": ["SEC-F1"], "event_start": iso(start),
                "event_end": iso(start + timedelta(hours=1)), "target_reduction_percentage": 10, **changes}

    with BackgroundServer(receiver_app(ReceiverConfig(database.sqlalchemy_url, webhook_secret=WEBHOOK_SECRET))) as receiver:
        # The receiver is live and stores a plain event: the refusals below are the ids'.
        assert signed_post(receiver.url, event()).status_code == 202
        with engine.connect() as conn:
            before = conn.scalar(sa.text("select count(*) from ops.dr_events"))
        # HOSTILE_FACILITY is even in the registry (the test above loaded it there).
        for body, field in [
            (event(facility_ids=[HOSTILE_FACILITY]), "each facility id"),
            (event(facility_ids=["SEC-F1", HOSTILE]), "each facility id"),
            (event(event_id=HOSTILE), "event_id"),
            (event(version=HOSTILE), "version"),
        ]:
            answer = signed_post(receiver.url, body)
            assert answer.status_code == 422, answer.text
            assert f"{field} may hold only letters, digits" in answer.json()["error"]
    with engine.connect() as conn:
        assert conn.scalar(sa.text("select count(*) from ops.dr_events")) == before
    assert table_exists(engine, "raw.meters")


def test_a_hostile_dr_partition_key_is_only_a_value_looked_up(scratch):
    from assets.demand_response import dr_baseline

    database, engine = scratch
    result = dr_run(database, [dr_baseline], f"{HOSTILE}@1", raise_on_error=False)
    assert not result.success
    assert f"no DR event {HOSTILE} version 1 in ops.dr_events" in failure_text(result)
    assert table_exists(engine, "raw.meters")


@pytest.mark.parametrize("bad", [
    f"{HOUR:%Y-%m-%d-%H:%M}'::timestamptz; drop table raw.meters; --",
    f"{HOUR:%Y-%m-%d}T10:00:00+00:00",  # a timestamp, but not a partition key
])
def test_a_hostile_partition_key_or_range_tag_is_refused_before_any_step_runs(scratch, bad):
    from assets.dbt_models import dbt_incremental_models
    from assets.telemetry import meter_readings
    from resources.dbt import dbt_cli
    from resources.postgres import PostgresResource
    from resources.telemetry_api import TelemetryApiResource

    database, engine = scratch
    resources = {"postgres": PostgresResource(url=database.url), "telemetry_api": TelemetryApiResource(base_url="http://127.0.0.1:9"), "dbt": dbt_cli()}
    good = f"{HOUR:%Y-%m-%d-%H:%M}"
    for assets, kwargs in [
        ([meter_readings], {"partition_key": bad}),
        ([dbt_incremental_models], {"tags": {ASSET_PARTITION_RANGE_START_TAG: bad, ASSET_PARTITION_RANGE_END_TAG: good}}),
        ([dbt_incremental_models], {"tags": {ASSET_PARTITION_RANGE_START_TAG: good, ASSET_PARTITION_RANGE_END_TAG: bad}}),
    ]:
        with DagsterInstance.ephemeral() as instance:
            with pytest.raises(Exception, match=r"does not match format|Could not find a partition with key"):
                materialize(assets, resources=resources, instance=instance, **kwargs)
            # Refused while the run was being planned: no step started, no SQL sent.
            assert not [e for r in instance.get_runs() for e in instance.all_logs(r.run_id) if e.is_dagster_event and e.dagster_event.is_step_start]
    assert table_exists(engine, "raw.meters")


def test_dbt_window_vars_are_datetimes_this_code_writes_in_utc():
    from assets.dbt_models import partition_window_vars

    berlin = datetime(2026, 3, 29, 3, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    assert partition_window_vars(TimeWindow(berlin, berlin + timedelta(hours=1))) == {
        "min_ts": "2026-03-29T03:00:00+00:00", "max_ts": "2026-03-29T04:00:00+00:00",
    }
    # Whatever is not a datetime with a zone (a raw tag, a naive time) never reaches the macros.
    for start in (f"{HOUR:%Y-%m-%d}'::timestamptz; drop table raw.meters; --", datetime(2026, 1, 1)):
        with pytest.raises(TypeError, match="min_ts must be a timezone-aware datetime"):
            partition_window_vars(TimeWindow(start, HOUR))


def test_a_database_name_is_quoted_as_an_identifier(pg_server):
    name = f'wattline_sec_{secrets.token_hex(3)}"; drop table raw.meters; --'
    ensure_database(pg_server, name)
    engine = sa.create_engine(pg_server.sqlalchemy_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            assert conn.scalar(sa.text("select datname from pg_database where datname = :n"), {"n": name}) == name
            ensure_database(pg_server, name)  # there already: nothing to do
            conn.execute(sa.text(f"drop database {conn.dialect.identifier_preparer.quote_identifier(name)}"))
    finally:
        engine.dispose()


# --- 2. the BI role ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def bi(scratch):
    """A connection as wattline_bi to this module's warehouse (bootstrapped for BI:
    ops tables with rows, the DR marts, a table dbt would make), autocommit."""
    database, engine = scratch
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into ops.dr_events (event_id, version, source, facility_ids, event_start, event_end, target_reduction_pct, payload) "
            "values ('SEC-E1', 'v1', 'utility', '{SEC-F1}', now(), now() + interval '1 hour', 10, '{\"secret\": \"payload\"}')"
        ))
        conn.execute(sa.text("create table if not exists marts.fct_sec as select 1 as x"))
    ensure_bi_access(database, BI_PASSWORD)
    connection = psycopg2.connect(database.with_user(BI_ROLE, BI_PASSWORD).url)
    connection.autocommit = True
    yield connection
    connection.close()


def test_bi_is_a_plain_login_role_member_of_nothing(scratch, bi):
    _, engine = scratch
    with engine.connect() as conn:
        role = conn.execute(sa.text("select * from pg_roles where rolname = :r"), {"r": BI_ROLE}).mappings().one()
        memberships = conn.scalars(sa.text(
            "select roleid::regrole::text from pg_auth_members where member = cast(:r as regrole)"
        ), {"r": BI_ROLE}).all()
        predefined = conn.scalars(sa.text(
            "select rolname from pg_roles where rolname like 'pg\\_%' and pg_has_role(:r, oid, 'usage')"
        ), {"r": BI_ROLE}).all()
    assert role["rolcanlogin"]
    assert not any(role[a] for a in ("rolsuper", "rolcreaterole", "rolcreatedb", "rolreplication", "rolbypassrls"))
    assert memberships == [] and predefined == []
    assert scalar(bi, "select x from marts.fct_sec") == 1  # what it is for: reading the marts


@pytest.mark.parametrize("relation", [
    "ops.dr_events", "ops.dr_dispatches", "ops.alerts", "ops.notifications", "ops.notification_queue",
    "raw.meters", "raw.feed_rejected", "raw.meter_readings_rejected",
])
def test_bi_reads_no_ops_or_raw_table(bi, relation):
    with pytest.raises(errors.InsufficientPrivilege):
        scalar(bi, f"select count(*) from {relation}")


@pytest.mark.parametrize("statement", [
    "select pg_read_file('PG_VERSION')",
    "select pg_read_binary_file('PG_VERSION')",
    "select count(*) from pg_ls_dir('.')",
    "select lo_import('/etc/hostname')",
    "copy (select 1) to program 'id'",
    "copy marts.fct_sec to '/tmp/wattline_bi_copy'",
    "copy marts.fct_sec from '/etc/hostname'",
    "truncate marts.fct_sec",
    "update marts.fct_sec set x = 2",
    "create view marts.bi_view as select 1 as x",
    "alter role wattline_bi createdb",
    "alter role wattline_bi superuser",
    "set role postgres",
])
def test_bi_cannot_reach_files_programs_or_more_privilege(bi, statement):
    with pytest.raises(errors.InsufficientPrivilege):
        scalar(bi, statement)


def test_bi_sees_neither_other_sessions_queries_nor_can_stop_them(scratch, bi):
    database, _ = scratch
    other = psycopg2.connect(database.url)
    try:
        marker = f"marker-{secrets.token_hex(4)}"
        pid = scalar(other, f"select pg_backend_pid() /* {marker} */")
        assert scalar(bi, "select query from pg_stat_activity where pid = %s", (pid,)) in ("<insufficient privilege>", None)
        with pytest.raises(errors.InsufficientPrivilege):
            scalar(bi, "select pg_cancel_backend(%s)", (pid,))
        with pytest.raises(errors.InsufficientPrivilege):
            scalar(bi, "select pg_terminate_backend(%s)", (pid,))
    finally:
        other.close()


def test_bi_reads_nothing_in_the_server_s_other_databases(pg_server, bi):
    # Dagster's storage (run config, event logs) is another database on the same server.
    storage = create_database(pg_server, "dagster_sec")
    try:
        engine = sa.create_engine(storage.sqlalchemy_url)
        with engine.begin() as conn:
            conn.execute(sa.text("create table public.event_logs as select 'a run''s events' as event"))
        engine.dispose()
        connection = psycopg2.connect(storage.with_user(BI_ROLE, BI_PASSWORD).url)
        connection.autocommit = True
        try:
            with pytest.raises(errors.InsufficientPrivilege):
                scalar(connection, "select count(*) from public.event_logs")
            with pytest.raises(errors.InsufficientPrivilege):
                scalar(connection, "create table public.bi_made as select 1 as x")
        finally:
            connection.close()
    finally:
        drop_database(pg_server, storage)


# --- 3. loopback unless configured -----------------------------------------------------


def test_the_webserver_and_the_receiver_listen_on_loopback_by_default(env):
    from orchestration.serve import daemon_command, receiver_command, webserver_command

    env.delenv("WATTLINE_UI_HOST", raising=False)
    settings = load_settings()
    assert settings.ui_host == "127.0.0.1"
    webserver, receiver = webserver_command(settings), receiver_command(settings)
    assert webserver[webserver.index("-h") + 1] == "127.0.0.1"
    assert receiver[receiver.index("--host") + 1] == "127.0.0.1"
    assert "-h" not in daemon_command() and "--host" not in daemon_command()  # the daemon listens on nothing

    env.setenv("WATTLINE_UI_HOST", "0.0.0.0")  # the operator opens it, on purpose
    opened = load_settings()
    assert webserver_command(opened)[webserver.index("-h") + 1] == "0.0.0.0"
    assert receiver_command(opened)[receiver.index("--host") + 1] == "0.0.0.0"


def test_the_simulator_listens_on_loopback_as_wattline_up_starts_it():
    settings = load_settings()
    config = SimulatorConfig(seed=settings.sim_seed, facilities=1, interval_s=settings.sim_interval_s)
    with SimulatorServer(config, port=0) as sim:  # what `wattline up` passes: config and port
        bound = {sock.getsockname()[0] for server in sim.server.servers for sock in server.sockets}
        assert bound == {"127.0.0.1"}
        assert sim.url.startswith("http://127.0.0.1:")


def test_the_embedded_postgresql_listens_on_a_private_unix_socket_only(pg_server, tmp_path):
    from orchestration import embedded_postgres

    home = None
    server = pg_server
    if not pg_server.embedded:  # the suite runs on a configured server: start an embedded one
        home = tmp_path / "embedded"
        server = embedded_postgres.start(home)
    try:
        engine = sa.create_engine(server.sqlalchemy_url)
        with engine.connect() as conn:
            assert conn.scalar(sa.text("show listen_addresses")) == ""  # no TCP socket at all
            [directory] = conn.scalar(sa.text("show unix_socket_directories")).split(",")
            data = conn.scalar(sa.text("show data_directory"))
        engine.dispose()
        assert Path(directory.strip()).resolve() == Path(data).resolve() == Path(server.libpq_params()["host"]).resolve()
        # The socket is reachable only through the data directory, which only its owner may enter.
        assert Path(data).stat().st_mode & 0o077 == 0
    finally:
        if home is not None:
            embedded_postgres.stop(home)


# --- 4. secrets ----------------------------------------------------------------------------


def test_a_database_password_is_masked_wherever_a_url_is_shown(tmp_path):
    for url, hidden in [
        ("postgresql://app:s3cr%40t@db.internal:5432/energy?sslmode=require", "s3cr"),
        ("postgresql://app:p@ss:word@db.internal/energy", "ss:word"),
        ("postgresql://app@db.internal/energy?sslmode=require&password=qu3ry-s3cret", "qu3ry-s3cret"),
    ]:
        database = Database(url=url)
        assert hidden not in database.redacted_url and "***" in database.redacted_url
        assert "db.internal" in database.redacted_url and "/energy" in database.redacted_url
        text = write_dagster_yaml(tmp_path, database).read_text()
        assert hidden not in text and f"env: {DAGSTER_STORAGE_ENV}" in text
    # The query form reaches dbt's profile too.
    assert Database(url="postgresql://app@h/db?password=qu3ry-s3cret").dbt_env()["WATTLINE_PG_PASSWORD"] == "qu3ry-s3cret"

    for url in ("postgresql://wl:s3cret-pw@127.0.0.1:1/nowhere", "postgresql://wl@127.0.0.1:1/nowhere?password=s3cret-pw"):
        with pytest.raises(BootstrapError) as refused:
            ensure_warehouse(load_settings(database_url=url))
        assert "s3cret-pw" not in str(refused.value) and "cannot reach PostgreSQL at postgresql://wl" in str(refused.value)


def test_a_run_that_cannot_reach_the_database_does_not_show_its_password():
    from assets.registry import facilities
    from resources.postgres import PostgresResource
    from resources.telemetry_api import TelemetryApiResource

    password = f"pw-{secrets.token_hex(6)}"
    result = materialize(
        [facilities], raise_on_error=False,
        resources={"postgres": PostgresResource(url=f"postgresql://wl:{password}@127.0.0.1:1/nowhere"),
                   "telemetry_api": TelemetryApiResource(base_url="http://127.0.0.1:9")},
    )
    assert not result.success
    text = "\n".join(str(event) for event in result.all_events)
    assert "127.0.0.1" in text and password not in text


class HeaderRecorder:
    """ASGI middleware keeping the path and `auth-token` header of every request."""

    def __init__(self, app):
        self.app = app
        self.seen: list[tuple[str, str | None]] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.seen.append((scope["path"], headers.get("auth-token")))
        await self.app(scope, receive, send)

    def tokens(self, prefix: str = "/v3/") -> list[str | None]:
        return [token for path, token in self.seen if path.startswith(prefix)]


def texts_holding(engine: sa.Engine, schemas: tuple[str, ...], needles: list[str]) -> list[str]:
    """`schema.table` of every table in `schemas` with a row whose text holds a needle."""
    found = []
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_schema = any(%s) and table_type = 'BASE TABLE'", (list(schemas),)
            )
            for schema, table in cur.fetchall():
                cur.execute(
                    sql.SQL("select count(*) from {} t, unnest(%s::text[]) as n(needle) where strpos(t::text, n.needle) > 0").format(
                        sql.Identifier(schema, table)
                    ),
                    (needles,),
                )
                if cur.fetchone()[0]:
                    found.append(f"{schema}.{table}")
    return found


def test_secrets_land_nowhere_a_run_or_the_bootstrap_writes(env, pg_server, tmp_path):
    """Bootstrap with every secret set, load the registry and a day of carbon intensity
    with the token (sent: the API saw it), then fail a day: no secret in any file under
    WATTLINE_HOME, in Dagster's run storage (runs, events, metadata, errors), in the
    warehouse, or in what `wattline db start` prints."""
    from assets.carbon import grid_carbon_intensity
    from assets.registry import facilities, meters
    from orchestration.cli import main
    from resources.carbon_api import CarbonApiResource
    from resources.postgres import PostgresResource
    from resources.telemetry_api import TelemetryApiResource

    warehouse, storage = create_database(pg_server, "wattline_sec_boot"), create_database(pg_server, "dagster_sec_boot")
    # A password in each URL (the embedded server's socket trusts, so any works there).
    password = pg_server.libpq_params()["password"] or f"db-{secrets.token_urlsafe(10)}"
    user = pg_server.libpq_params()["user"]
    smtp_password = f"smtp-{secrets.token_urlsafe(10)}"
    secret = {
        "DATABASE_URL": warehouse.with_user(user, password).url,
        "DAGSTER_DATABASE_URL": storage.with_user(user, password).url,
        "CARBON_API_TOKEN": f"carbon-{secrets.token_urlsafe(16)}",
        "WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "OPENADR_TOKEN": f"vtn-{secrets.token_urlsafe(32)}",
        "BI_PASSWORD": BI_PASSWORD,
        "NOTIFY_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "NOTIFY_SMTP_URL": f"smtp://alerts:{smtp_password}@127.0.0.1:1",
    }
    feed_password = f"feed-{secrets.token_urlsafe(10)}"
    needles = [password, feed_password, smtp_password, *(v for k, v in secret.items() if not k.endswith("_URL"))]
    home = tmp_path / "home"
    env.setenv("WATTLINE_HOME", str(home))
    env.delenv("DAGSTER_HOME", raising=False)
    for name, value in secret.items():
        env.setenv(f"WATTLINE_{name}", value)
    env.setenv("WATTLINE_NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/alerts")
    env.setenv("WATTLINE_NOTIFY_EMAIL_TO", "ops@example.org")

    carbon = HeaderRecorder(create_app(SimulatorConfig(seed=3, facilities=2, interval_s=900)))
    try:
        with SimulatorServer(SimulatorConfig(seed=3, facilities=2, interval_s=900)) as sim, BackgroundServer(carbon) as carbon_api:
            env.setenv("WATTLINE_TELEMETRY_API_URL", sim.url)
            env.setenv("WATTLINE_CARBON_API_URL", carbon_api.url)
            get_settings.cache_clear()
            runtime = bootstrap(get_settings())
            printed = CliRunner().invoke(main, ["db", "start"])
            assert printed.exit_code == 0, printed.output
            assert "ready: postgresql://" in printed.output and "***" in printed.output

            day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
            with DagsterInstance.get() as instance:
                assert type(instance.run_storage).__name__ == "PostgresRunStorage"
                resources = {"postgres": PostgresResource(), "telemetry_api": TelemetryApiResource(), "carbon_api": CarbonApiResource()}
                assert materialize([facilities, meters], resources=resources, instance=instance).success
                loaded = materialize([grid_carbon_intensity], resources=resources, instance=instance, partition_key=f"{day:%Y-%m-%d}")
                assert loaded.success
                # The token went to the carbon API, as the header, on every request.
                assert carbon.tokens() and set(carbon.tokens()) == {secret["CARBON_API_TOKEN"]}

                # A failing day, from a feed URL with credentials in it: the error names the URL, without them.
                feed_url = carbon_api.url.replace("http://", f"http://feed:{feed_password}@")
                env.setenv("WATTLINE_CARBON_API_URL", feed_url)
                get_settings.cache_clear()
                fault = {"path_prefix": "/v3/carbon-intensity", "kind": "error", "status": 500, "count": 4}
                assert requests.post(f"{carbon_api.url}/v1/sim/faults", json=fault, timeout=5).status_code == 201
                failed = materialize(
                    [grid_carbon_intensity], instance=instance, partition_key=f"{day - timedelta(days=1):%Y-%m-%d}", raise_on_error=False,
                    resources={**resources, "carbon_api": CarbonApiResource(max_retries=1, backoff_factor=0.01)},
                )
                assert not failed.success
                error = failure_text(failed)
                assert f"GET {carbon_api.url}/v3/carbon-intensity/past-range" in error and "answered 500" in error, error
                assert not [n for n in needles if n in error]
                assert set(carbon.tokens()) == {secret["CARBON_API_TOKEN"]}  # still sent: same origin

                events = "\n".join(str(e) for run in instance.get_runs() for e in instance.all_logs(run.run_id))
                assert "answered 500" in events and not [n for n in needles if n in events]
                metadata = loaded.get_asset_materialization_events()[0].materialization.metadata
                assert not [n for n in needles if n in str(metadata)]

        storage_engine = sa.create_engine(runtime.dagster_storage.sqlalchemy_url)
        warehouse_engine = sa.create_engine(runtime.warehouse.sqlalchemy_url)
        try:
            assert texts_holding(storage_engine, ("public",), ["answered 500"])  # the search finds what is there
            assert texts_holding(storage_engine, ("public",), needles) == []
            assert texts_holding(warehouse_engine, ("raw",), ["FAC-0001"])  # and here
            assert texts_holding(warehouse_engine, ("raw", "ops", "marts", "public"), needles) == []
        finally:
            storage_engine.dispose()
            warehouse_engine.dispose()

        written = [path for path in home.rglob("*") if path.is_file()]
        assert home / "dagster" / "dagster.yaml" in written
        quoted = needles + [quote(n, safe="") for n in needles]
        assert not [(path, n) for path in written for n in quoted if n.encode() in path.read_bytes()]
    finally:
        drop_database(pg_server, warehouse)
        drop_database(pg_server, storage)


def test_the_carbon_token_goes_to_the_configured_api_only(env, pg_server):
    """Not to a base_url set in run config (anyone with Launchpad access can set one), nor
    to another host the configured API redirects to."""
    from assets.carbon import grid_carbon_intensity
    from resources.carbon_api import CarbonApiResource
    from resources.postgres import PostgresResource

    database = create_database(pg_server, "wattline_sec_carbon")
    ensure_warehouse_schema(database)
    engine = sa.create_engine(database.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(sa.text("insert into raw.facilities (facility_id, name, timezone, grid_zone) values ('SEC-C1', 'Carbon', 'UTC', 'DE')"))
    engine.dispose()
    try:
        token = f"carbon-{secrets.token_urlsafe(16)}"
        config = SimulatorConfig(seed=3, facilities=1, interval_s=900)
        elsewhere = HeaderRecorder(create_app(config))
        configured = HeaderRecorder(Starlette(routes=[Route(
            "/v3/carbon-intensity/past-range",
            lambda request: RedirectResponse(f"{away.url}{request.url.path}?{request.url.query}", status_code=307),
        )]))
        day = f"{datetime.now(UTC) - timedelta(days=5):%Y-%m-%d}"
        with BackgroundServer(elsewhere) as away, BackgroundServer(configured) as home:
            env.setenv("WATTLINE_CARBON_API_URL", home.url)
            env.setenv("WATTLINE_CARBON_API_TOKEN", token)
            get_settings.cache_clear()
            postgres = PostgresResource(url=database.url)

            # Redirected to another host: the configured API got the token, the other host not.
            result = materialize([grid_carbon_intensity], resources={"postgres": postgres, "carbon_api": CarbonApiResource()}, partition_key=day)
            assert result.success, failure_text(result)
            assert configured.tokens() and set(configured.tokens()) == {token}
            assert elsewhere.tokens() and set(elsewhere.tokens()) == {None}

            # Pointed elsewhere by run config: no token leaves.
            seen = len(elsewhere.seen)
            resources = {"postgres": postgres, "carbon_api": CarbonApiResource(base_url=away.url)}
            result = materialize([grid_carbon_intensity], resources=resources, partition_key=day)
            assert result.success, failure_text(result)
            assert len(elsewhere.seen) > seen and {t for _, t in elsewhere.seen[seen:]} == {None}
    finally:
        drop_database(pg_server, database)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_bms_url_with_credentials_is_recorded_and_reported_without_them(scratch):
    from assets.dr_dispatch import dr_dispatch
    from resources.bms import BmsResource

    database, engine = scratch
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into ops.dr_events (event_id, version, source, facility_ids, event_start, event_end, target_reduction_pct, payload, status) "
            "values ('SEC-D1', 'v1', 'utility', '{SEC-F1}', now() + interval '1 hour', now() + interval '2 hours', 10, '{}', 'planned')"
        ))
    port = closed_port()
    url = f"http://ops:bms-pw-{secrets.token_hex(4)}@127.0.0.1:{port}/dispatch?token=bms-tok-{secrets.token_hex(4)}"
    hidden = [urlsplit(url).password, url.rpartition("=")[2]]
    failed = dr_run(database, [dr_dispatch], "SEC-D1@v1", raise_on_error=False, bms=BmsResource(url=url, max_retries=0))
    assert not failed.success
    text = failure_text(failed) + "\n".join(str(e) for e in failed.all_events)
    assert f"POST http://127.0.0.1:{port}/dispatch?token=***" in text and not [h for h in hidden if h in text]
    with engine.connect() as conn:
        row = conn.execute(sa.text("select bms_url, status, answer from ops.dr_dispatches where event_id = 'SEC-D1'")).one()
    assert (row.bms_url, row.status) == (f"http://127.0.0.1:{port}/dispatch?token=***", "failed")
    assert "Connection refused" in row.answer or "NewConnectionError" in row.answer
    assert not [h for h in hidden if h in row.answer]


def test_a_url_shown_in_an_error_or_a_row_carries_no_credential():
    from resources.http import safe_url

    assert safe_url("https://feed:pw-123@api.example.org:8443/v3/x?zone=DE&auth-token=tok-456&api_key=k-789") == (
        "https://api.example.org:8443/v3/x?zone=DE&auth-token=***&api_key=***"
    )
    assert safe_url("http://127.0.0.1:8788/v1/bms/dispatches") == "http://127.0.0.1:8788/v1/bms/dispatches"
