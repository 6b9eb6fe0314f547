"""Retention on a warehouse of its own: a raw day partition past retention is dropped
only when its hourly rollups exist, a day without them is kept (and goes once the marts
have it), the marts keep their own, longer window, and the run says what it removed."""

import os
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from dagster import materialize

from assets.carbon import grid_carbon_intensity
from assets.dbt_models import dbt_derived_models, dbt_incremental_models, dbt_models
from assets.prices import grid_prices
from assets.telemetry import meter_readings
from assets.weather import weather_hourly
from orchestration.retention import retention_job
from orchestration.runs import hourly_range_tags
from resources.dbt import dbt_cli
from resources.postgres import PostgresResource, ensure_warehouse_schema
from simulator.config import SimulatorConfig
from simulator.server import SimulatorServer
from tests.conftest import (
    create_database,
    drop_database,
    load_registry,
    source_resources,
)

D0 = datetime(2026, 5, 4, tzinfo=UTC)  # a Monday; four days of data, D0 … D0 + 3 days
DAY = timedelta(days=1)
AS_OF = D0 + 4 * DAY  # the retention run's "now": the end of the fourth day


@pytest.fixture(scope="module")
def retained(pg_server, warehouse, dbt_manifest):
    """Four days of raw readings for two facilities, and their marts but for the second
    day's hourly rollups (as when the marts have not caught up with a reload). Yields
    (database, engine, resources)."""
    database = create_database(pg_server, "wattline_retention")
    ensure_warehouse_schema(database)
    engine = sa.create_engine(database.sqlalchemy_url)
    config = SimulatorConfig(seed=5, facilities=2, interval_s=900, now=lambda: AS_OF + DAY)
    try:
        with SimulatorServer(config) as server:
            load_registry(database, server.url)
            resources = {**source_resources(database, server.url, max_retries=0), "dbt": dbt_cli()}
            assert materialize([meter_readings], resources=resources, tags=hourly_range_tags(D0, D0 + 4 * DAY)).success
            for day in range(4):
                assert materialize([weather_hourly, grid_prices, grid_carbon_intensity], resources=resources,
                                   partition_key=f"{D0 + day * DAY:%Y-%m-%d}").success
            assert materialize([dbt_models], resources=resources).success
            assert materialize([dbt_incremental_models, dbt_derived_models], resources=resources,
                               tags=hourly_range_tags(D0, D0 + 4 * DAY)).success
            with engine.begin() as conn:
                conn.execute(sa.text("delete from marts.fct_load_hourly where hour_start >= :s and hour_start < :e"),
                             {"s": D0 + DAY, "e": D0 + 2 * DAY})
            yield database, engine, resources
    finally:
        os.environ.update(warehouse.dbt_env())
        engine.dispose()
        drop_database(pg_server, database)


def raw_days(engine) -> dict[str, int]:
    with engine.connect() as conn:
        names = conn.execute(sa.text(
            "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
            "where i.inhparent = 'raw.meter_readings'::regclass order by 1"
        )).scalars().all()
        return {name[-8:]: conn.scalar(sa.text(f'select count(*) from raw."{name}"')) for name in names}


def run_retention(database, raw, marts):
    result = retention_job.execute_in_process(
        run_config={"ops": {"apply_retention": {"config": {"raw_days": raw, "marts_days": marts, "as_of": AS_OF.isoformat()}}}},
        resources={"postgres": PostgresResource(url=database.url)},
    )
    assert result.success
    [materialized] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return materialized.event_specific_data.metadata


def test_only_days_with_rollups_are_dropped_and_the_run_says_what_it_removed(retained):
    database, engine, resources = retained
    before = raw_days(engine)
    assert list(before) == ["20260504", "20260505", "20260506", "20260507"]
    with engine.connect() as conn:
        hourly_before = conn.scalar(sa.text("select count(*) from marts.fct_load_hourly where hour_start < :d"), {"d": D0 + DAY})

    # Keep 2 days of raw (D0 and D1 are past it) and 3 days of marts (D0's go).
    metadata = run_retention(database, raw=2, marts=3)
    after = raw_days(engine)
    assert list(after) == ["20260505", "20260506", "20260507"]  # D0 dropped, D1 kept: no rollups
    assert after["20260505"] == before["20260505"]
    assert metadata["raw_days_dropped"].value == 1 and metadata["raw_rows_dropped"].value == before["20260504"]
    assert metadata["raw_days_kept"].value == 1
    report = metadata["report"].value
    assert f"raw.meter_readings of 2026-05-04 | {before['20260504']:,} readings (partition dropped)" in report
    assert "raw.meter_readings of 2026-05-05: 48 facility-hours without a complete hourly rollup, from 2026-05-05 00:00 UTC" in report
    with engine.connect() as conn:
        assert conn.scalar(sa.text("select count(*) from marts.fct_load_hourly where hour_start < :d"), {"d": D0 + DAY}) == 0
        assert conn.scalar(sa.text("select count(*) from marts.fct_load_hourly where hour_start >= :d"), {"d": D0 + 2 * DAY}) == 2 * 48
        # The rest of raw is untouched, and readings outside the dropped day still load.
        assert conn.scalar(sa.text("select count(*) from raw.meter_readings")) == sum(after.values())
    assert f"marts.fct_load_hourly | {hourly_before:,} rows past retention" in report

    # Once the marts have D1, the next run drops it too; a run with nothing to do says so.
    assert materialize([dbt_incremental_models, dbt_derived_models], resources=resources,
                       tags=hourly_range_tags(D0 + DAY, D0 + 2 * DAY)).success
    metadata = run_retention(database, raw=2, marts=3)
    assert list(raw_days(engine)) == ["20260506", "20260507"]
    assert metadata["raw_days_dropped"].value == 1 and metadata["raw_days_kept"].value == 0
    metadata = run_retention(database, raw=2, marts=3)
    assert metadata["raw_days_dropped"].value == 0
    assert "nothing was past retention" in metadata["report"].value
