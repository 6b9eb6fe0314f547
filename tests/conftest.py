"""Shared fixtures: a real PostgreSQL for the session, the dbt manifest, the simulator.

PostgreSQL is the embedded server (pgserver) in a temporary directory, or, with
WATTLINE_TEST_DATABASE_URL set, a fresh database created on that server and dropped
afterwards.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Before anything reads settings: never touch the developer's .wattline or .env.
_TEST_HOME = Path(tempfile.mkdtemp(prefix="wattline-test-"))
os.environ["WATTLINE_HOME"] = str(_TEST_HOME / "home")
os.environ.pop("WATTLINE_DATABASE_URL", None)
os.environ.pop("WATTLINE_TELEMETRY_API_URL", None)
# Hypothesis keeps its example database under the session's temporary folder, not the repo.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(_TEST_HOME / "hypothesis"))
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

import pytest
import sqlalchemy as sa

from orchestration.database import Database


def _restore_environment():
    saved, cwd = dict(os.environ), os.getcwd()
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)
    os.chdir(cwd)


# A bootstrap exports DAGSTER_HOME, the Dagster storage URL and the warehouse's dbt
# variables into this process, as the CLI does; here that must not outlive the test (or the
# module, for a module's fixtures) that did it: a later subprocess inherits the environment
# and would open a stopped server's storage. The working directory too: a later
# `reconstructable()` records it as the code's working directory.
restore_environment_per_test = pytest.fixture(autouse=True)(_restore_environment)
restore_environment_per_module = pytest.fixture(autouse=True, scope="module")(_restore_environment)


@pytest.fixture(scope="session")
def pg_server() -> Database:
    """A PostgreSQL server's maintenance database (`postgres`)."""
    external = os.environ.get("WATTLINE_TEST_DATABASE_URL")
    if external:
        yield Database(url=external)
        return
    from orchestration import embedded_postgres

    home = _TEST_HOME / "server"
    server = embedded_postgres.start(home)
    yield server
    embedded_postgres.stop(home)


def missing_prerequisite(reason: str) -> None:
    """A test that cannot run here: skipped on a developer's machine, failed in CI (`CI` is
    set), where a skip would pass for a test that ran."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must provide it)")
    pytest.skip(reason)


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.2):
    """The predicate's first truthy value; a busy machine gets until the deadline, never a fixed sleep."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    pytest.fail(f"{what}: not within {timeout_s:.0f} s")


def create_database(server: Database, prefix: str) -> Database:
    name = f"{prefix}_{secrets.token_hex(4)}"
    engine = sa.create_engine(server.sqlalchemy_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    engine.dispose()
    return server.with_name(name)


def drop_database(server: Database, database: Database) -> None:
    engine = sa.create_engine(server.sqlalchemy_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'drop database if exists "{database.name}" with (force)'))
    engine.dispose()


@contextlib.contextmanager
def generated_instance(server: Database, home: Path, prefix: str):
    """A Dagster instance as `wattline` generates it (orchestration/runtime.py), its
    storage a new database of its own, dropped after."""
    from dagster import DagsterInstance

    from orchestration.runtime import write_dagster_yaml

    storage = create_database(server, prefix)
    write_dagster_yaml(home, storage)
    instance = DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()
        drop_database(server, storage)


@contextlib.contextmanager
def own_warehouse(server: Database, prefix: str):
    """A new warehouse of a test module's own (the raw tables, no models), for worlds
    that must not leak into other modules'; yields (database, engine), dropped after."""
    from resources.postgres import ensure_warehouse_schema

    database = create_database(server, prefix)
    ensure_warehouse_schema(database)
    engine = sa.create_engine(database.sqlalchemy_url)
    try:
        yield database, engine
    finally:
        engine.dispose()
        drop_database(server, database)


@pytest.fixture(scope="session")
def warehouse(pg_server: Database) -> Database:
    """A fresh warehouse database with the raw schema, exported to dbt's profile variables."""
    from resources.postgres import ensure_warehouse_schema

    database = create_database(pg_server, "wattline_test")
    ensure_warehouse_schema(database)
    os.environ.update(database.dbt_env())
    yield database
    drop_database(pg_server, database)


@pytest.fixture(scope="session")
def engine(warehouse: Database) -> sa.Engine:
    engine = sa.create_engine(warehouse.sqlalchemy_url)
    yield engine
    engine.dispose()


def source_resources(warehouse: Database, base_url: str, **api_options) -> dict:
    """The resources a source asset runs with: the test warehouse and an API at base_url."""
    from resources.carbon_api import CarbonApiResource
    from resources.postgres import PostgresResource
    from resources.price_api import PriceApiResource
    from resources.telemetry_api import TelemetryApiResource
    from resources.weather_api import WeatherApiResource

    return {
        "postgres": PostgresResource(url=warehouse.url),
        "telemetry_api": TelemetryApiResource(base_url=base_url, **api_options),
        "weather_api": WeatherApiResource(base_url=base_url, **api_options),
        "price_api": PriceApiResource(base_url=base_url, **api_options),
        "carbon_api": CarbonApiResource(base_url=base_url, **api_options),
    }


def load_registry(warehouse: Database, base_url: str) -> None:
    """Materialise the facility and meter registry, which readings are checked against."""
    from dagster import materialize

    from assets.registry import facilities, meters

    assert materialize([facilities, meters], resources=source_resources(warehouse, base_url)).success


def undocumented_columns(engine: sa.Engine, table: str) -> list[str]:
    """Columns of `table` without a comment: what BI tools and the UI would show bare."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "select attname from pg_attribute where attrelid = cast(:t as regclass) and attnum > 0 "
            "and not attisdropped and coalesce(col_description(attrelid, attnum), '') = ''"
        ), {"t": table}).scalars().all()


def add_dr_event(
    engine: sa.Engine, event_id: str, version: str, facilities: list[str], start: datetime, end: datetime, *,
    pct: float | None = 20, kw: float | None = None, status: str = "received", received_at: datetime | None = None,
) -> int:
    """An event in the DR inbox as the receiver stores it (received 3 h before its start
    unless told: the notice every catalogue action needs); returns its inbox id."""
    with engine.begin() as conn:
        return conn.execute(sa.text(
            "insert into ops.dr_events (event_id, version, source, facility_ids, event_start, event_end, "
            "target_reduction_pct, target_reduction_kw, payload, status, received_at) "
            "values (:e, :v, 'utility', :f, :s, :end, :pct, :kw, '{}'::jsonb, :status, :received) returning inbox_id"
        ), {
            "e": event_id, "v": version, "f": facilities, "s": start, "end": end, "pct": pct, "kw": kw,
            "status": status, "received": received_at or start - timedelta(hours=3),
        }).scalar_one()


def dr_run(database: Database, assets: list, key: str | list[str], raise_on_error: bool = True, **resources):
    """Materialise DR assets for one event partition, as dr_plan_job's run would, or for
    several consecutive ones as a range (a burst's run)."""
    from dagster import DagsterInstance, materialize
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from resources.postgres import PostgresResource

    keys = [key] if isinstance(key, str) else list(key)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("dr_events", keys)
    where = (
        {"partition_key": keys[0]} if len(keys) == 1
        else {"tags": {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}}
    )
    return materialize(
        assets, instance=instance, raise_on_error=raise_on_error,
        resources={"postgres": PostgresResource(url=database.url), **resources}, **where,
    )


def failure_text(result) -> str:
    """The step failure as the UI shows it: the error and its causes."""
    error = result.get_step_failure_events()[0].step_failure_data.error
    parts = []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)


@pytest.fixture(scope="session")
def dbt_manifest(warehouse: Database) -> Path:
    """The dbt manifest, prepared once for the session's warehouse."""
    from resources.dbt import prepare_manifest

    return prepare_manifest()


# The simulator's fleet over 16 days across the EU DST change: days no other module
# loads. The forecast and the DR modules read it.
FLEET_SEED, FLEET_FACILITIES = 11, 2
FLEET_START = datetime(2026, 3, 18, tzinfo=UTC)
FLEET_END = FLEET_START + timedelta(days=16)


def fleet_simulator_config():
    """The simulated world behind `simulated_fleet` (its clock four days past the data)."""
    from simulator.config import SimulatorConfig

    return SimulatorConfig(seed=FLEET_SEED, facilities=FLEET_FACILITIES, interval_s=900, now=lambda: FLEET_END + timedelta(days=4))


@pytest.fixture(scope="session")
def simulated_fleet(pg_server, warehouse, dbt_manifest):
    """16 days of two simulated facilities (an office in Berlin, a data centre in New
    York), loaded and modelled through the real assets, in a database of their own;
    yields (database, engine)."""
    from dagster import materialize

    from assets.carbon import grid_carbon_intensity
    from assets.dbt_models import dbt_derived_models, dbt_incremental_models, dbt_models
    from assets.prices import grid_prices
    from assets.telemetry import meter_readings
    from assets.weather import weather_hourly
    from orchestration.runs import hourly_range_tags
    from resources.dbt import dbt_cli
    from resources.postgres import ensure_warehouse_schema
    from simulator.server import SimulatorServer

    database = create_database(pg_server, "wattline_fleet")
    ensure_warehouse_schema(database)
    config = fleet_simulator_config()
    engine = sa.create_engine(database.sqlalchemy_url)
    try:
        with SimulatorServer(config) as server:
            load_registry(database, server.url)
            resources = {**source_resources(database, server.url, max_retries=0), "dbt": dbt_cli()}
            assert materialize([meter_readings], resources=resources, tags=hourly_range_tags(FLEET_START, FLEET_END)).success
            # Weather two days past the data: forecast hours need it.
            for day in range(19):
                partition = f"{FLEET_START + timedelta(days=day):%Y-%m-%d}"
                assert materialize([weather_hourly, grid_prices, grid_carbon_intensity], resources=resources, partition_key=partition).success
            assert materialize([dbt_models], resources=resources).success
            assert materialize(
                [dbt_incremental_models, dbt_derived_models], resources=resources, tags=hourly_range_tags(FLEET_START, FLEET_END)
            ).success
        yield database, engine
    finally:
        # Other modules' dbt runs read the session warehouse from the environment.
        os.environ.update(warehouse.dbt_env())
        engine.dispose()
        drop_database(pg_server, database)


def pytest_collection_finish(session):
    """The short soak (tests/test_soak.py) and the README's `make demo` twice
    (tests/test_readme_path.py) start as soon as the session has selected them and run in
    the background beside the other modules; their tests read what they left."""
    if session.config.option.collectonly:
        return
    modules = {item.module.__name__.rpartition(".")[2] for item in session.items}
    if "test_readme_path" in modules:
        from tests.test_readme_path import README_KEY, start_readme_path

        session.config.stash[README_KEY] = start_readme_path()
    if "test_soak" in modules:
        from tests.test_soak import SOAK_KEY, start_soak

        session.config.stash[SOAK_KEY] = start_soak()


def pytest_sessionfinish(session, exitstatus):
    """An interrupted session stops the soak (it cleans up on SIGTERM) and the demo."""
    from tests.test_readme_path import README_KEY, stop_readme_path
    from tests.test_soak import SOAK_KEY

    readme = session.config.stash.get(README_KEY, None)
    if readme is not None and readme[0].is_alive():
        stop_readme_path(*readme)

    process, _ = session.config.stash.get(SOAK_KEY, (None, None))
    if process is not None and process.poll() is None:
        process.terminate()
        process.wait(timeout=120)
