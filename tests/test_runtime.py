"""The runtime: embedded PostgreSQL by default, any PostgreSQL when configured, and a
Dagster instance on PostgreSQL storage either way."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from orchestration import embedded_postgres
from orchestration.database import Database
from orchestration.runtime import DAGSTER_STORAGE_ENV, bootstrap, write_dagster_yaml
from orchestration.settings import load_settings
from tests.conftest import create_database, drop_database

WATTLINE = [sys.executable, "-m", "orchestration.cli"]


def _instance_storage_kind(dagster_home: Path) -> str:
    """Ask a fresh process (as the webserver would) which run storage the instance uses."""
    code = "from dagster import DagsterInstance; i = DagsterInstance.get(); print(type(i.run_storage).__name__); print(len(i.get_runs()))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()[0]


def _databases(server: Database) -> set[str]:
    engine = sa.create_engine(server.sqlalchemy_url)
    with engine.connect() as conn:
        names = set(conn.scalars(sa.text("select datname from pg_database")))
    engine.dispose()
    return names


@pytest.fixture
def clean_env(monkeypatch):
    """bootstrap() exports DAGSTER_HOME and the connection for child processes: put the
    environment back afterwards so later tests do not inherit this test's instance."""
    saved = dict(os.environ)
    for name in ("DAGSTER_HOME", DAGSTER_STORAGE_ENV, "WATTLINE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch
    os.environ.clear()
    os.environ.update(saved)


def test_embedded_server_starts_is_reused_and_stops(clean_env, tmp_path):
    home = tmp_path / "home"
    clean_env.setenv("WATTLINE_HOME", str(home))
    settings = load_settings()
    try:
        runtime = bootstrap(settings)
        assert runtime.warehouse.embedded
        assert runtime.warehouse.name == "wattline"
        assert (home / "pgdata" / "PG_VERSION").exists()
        assert {"wattline", "dagster"} <= _databases(runtime.warehouse)
        assert _instance_storage_kind(runtime.dagster_home) == "PostgresRunStorage"

        again = bootstrap(settings)
        assert again.warehouse.url == runtime.warehouse.url

        env = {**os.environ, "WATTLINE_HOME": str(home)}
        out = subprocess.run([*WATTLINE, "db", "url"], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip().splitlines()[-1] == runtime.warehouse.url
        out = subprocess.run([*WATTLINE, "db", "stop"], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "stopped"
        assert embedded_postgres.running_url(home) is None
        out = subprocess.run([*WATTLINE, "db", "status"], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "stopped"
    finally:
        embedded_postgres.stop(home)


def test_configured_server_is_used_and_nothing_is_started(clean_env, tmp_path, pg_server):
    warehouse = create_database(pg_server, "wattline_ext")
    storage = create_database(pg_server, "dagster_ext")
    try:
        clean_env.setenv("WATTLINE_HOME", str(tmp_path / "home"))
        clean_env.setenv("WATTLINE_DATABASE_URL", warehouse.url)
        clean_env.setenv("WATTLINE_DAGSTER_DATABASE_URL", storage.url)
        runtime = bootstrap(load_settings())
        assert not runtime.warehouse.embedded
        assert runtime.warehouse.url == warehouse.url
        assert not (tmp_path / "home" / "pgdata").exists()
        engine = sa.create_engine(warehouse.sqlalchemy_url)
        with engine.connect() as conn:
            assert conn.scalar(sa.text("select to_regclass('raw.meter_readings')::text")) == "raw.meter_readings"
        engine.dispose()
        assert _instance_storage_kind(runtime.dagster_home) == "PostgresRunStorage"
        # Dagster's tables went to the storage database, not the warehouse.
        engine = sa.create_engine(storage.sqlalchemy_url)
        with engine.connect() as conn:
            assert conn.scalar(sa.text("select to_regclass('public.runs')::text")) == "runs"
        engine.dispose()
    finally:
        drop_database(pg_server, warehouse)
        drop_database(pg_server, storage)


def test_unreachable_server_says_where_it_looked(clean_env, tmp_path):
    clean_env.setenv("WATTLINE_HOME", str(tmp_path / "home"))
    env = {**os.environ, "WATTLINE_DATABASE_URL": "postgresql://wl:secret@127.0.0.1:1/nowhere"}
    out = subprocess.run([*WATTLINE, "db", "start"], env=env, capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert "cannot reach PostgreSQL at postgresql://wl:***@127.0.0.1:1/nowhere" in out.stderr
    assert "Traceback" not in out.stderr
    assert "secret" not in out.stderr + out.stdout


def test_dagster_yaml_keeps_passwords_out_of_the_file(tmp_path):
    path = write_dagster_yaml(tmp_path, Database(url="postgresql://dagster:hunter2@db.internal/dagster"))
    text = path.read_text()
    assert "hunter2" not in text
    config = yaml.safe_load(text)
    assert config["storage"]["custom"]["config"]["postgres_url"] == {"env": DAGSTER_STORAGE_ENV}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"

    path = write_dagster_yaml(tmp_path, Database(url="postgresql://postgres:@/dagster?host=/tmp/sock"))
    config = yaml.safe_load(path.read_text())
    assert config["storage"]["custom"]["config"]["postgres_url"].startswith("postgresql+psycopg2://postgres:@/dagster?host=/tmp/sock&connect_timeout=10")
    # Run monitoring can tell a dead run worker (issue 18).
    assert config["run_launcher"]["class"] == "WattlineRunLauncher"
    assert config["run_monitoring"]["enabled"] and config["run_monitoring"]["poll_interval_seconds"] <= 30


def test_the_warehouse_ddl_runs_once_per_version_and_takes_no_lock_after(pg_server):
    """Every run's warehouse resource ensures the schema. Re-running the DDL each time
    took exclusive locks on the DR tables (`alter table … add column if not exists`)
    and deadlocked against a plan run writing them; a warehouse at this version is now
    only read. A changed DDL (an upgrade) is applied again."""
    import threading

    from resources.postgres import ensure_warehouse_schema

    database = create_database(pg_server, "schema_version")
    engine = sa.create_engine(database.sqlalchemy_url)
    try:
        ensure_warehouse_schema(database)
        with engine.connect() as writer:
            # A plan run mid-transaction: its row locks on the DR tables held.
            writer.execute(sa.text("lock table ops.dr_events, marts.fct_dr_baseline in row exclusive mode"))
            again = threading.Thread(target=ensure_warehouse_schema, args=(database,), daemon=True)
            again.start()
            again.join(timeout=60)
            blocked = again.is_alive()
            writer.rollback()
        again.join(timeout=60)
        assert not blocked, "ensure_warehouse_schema waited on a run's locks: it ran the DDL again"

        # An older version of the DDL, and a table it lacked: brought up to date.
        with engine.begin() as conn:
            conn.execute(sa.text("update ops.warehouse_schema set digest = 'an older release'"))
            conn.execute(sa.text("drop table marts.fct_dr_baseline"))
        ensure_warehouse_schema(database)
        with engine.connect() as conn:
            assert conn.scalar(sa.text("select to_regclass('marts.fct_dr_baseline') is not null"))
            assert conn.scalar(sa.text("select digest from ops.warehouse_schema")) != "an older release"
    finally:
        engine.dispose()
        drop_database(pg_server, database)
