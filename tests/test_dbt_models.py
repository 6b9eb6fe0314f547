"""dbt models on real PostgreSQL through Dagster: hand-checked numbers, window replacement."""

import os
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from dagster import TimeWindow, materialize

from assets.dbt_models import dbt_incremental_models, dbt_models, partition_window_vars
from orchestration.runs import hourly_range_tags
from resources.dbt import dbt_cli
from resources.postgres import PostgresResource
from tests.support import load

T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)


def reading(facility, meter, minute, kwh, kw, interval_s=300):
    ts = T0 + timedelta(minutes=minute)
    return [ts.strftime("%Y-%m-%dT%H:%M:%SZ"), meter, facility, interval_s, kwh, kw, 1.0, 230.0, 10.0, 0.95, 50.0, "grid"]


def fct(engine):
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "select facility_id, interval_start, energy_kwh, avg_kw, min_kw, max_kw, reading_count, "
                "meter_count, data_completeness "
                # Other tests share the database: look at this case's facilities only.
                "from marts.fct_load_15min where facility_id in ('F1', 'F2') order by facility_id, interval_start"
            )
        ).all()


@pytest.fixture(scope="module")
def resources(warehouse, dbt_manifest):
    return {"dbt": dbt_cli(), "postgres": PostgresResource(url=warehouse.url)}


def test_partition_window_becomes_dbt_vars():
    window = TimeWindow(T0, T0 + timedelta(hours=3))
    assert partition_window_vars(window) == {
        "min_ts": "2026-01-05T10:00:00+00:00",
        "max_ts": "2026-01-05T13:00:00+00:00",
    }


def test_load_15min_numbers_and_window_replacement(engine, resources):
    first_hour = [
        # F1: two meters, 5-minute readings, M2's 10:10 reading missing.
        reading("F1", "M1", 0, 1.0, 12.0), reading("F1", "M2", 0, 0.5, 6.0),
        reading("F1", "M1", 5, 2.0, 24.0), reading("F1", "M2", 5, 0.5, 6.0),
        reading("F1", "M1", 10, 1.0, 12.0),
        reading("F1", "M1", 15, 3.0, 36.0),
        # F2: one meter, one full quarter hour.
        reading("F2", "M9", 30, 0.25, 3.0), reading("F2", "M9", 35, 0.25, 3.0), reading("F2", "M9", 40, 0.5, 6.0),
    ]
    second_hour = [reading("F1", "M1", 60, 4.0, 48.0)]
    load(engine, first_hour, T0)
    load(engine, second_hour, T0 + timedelta(hours=1))

    assert materialize([dbt_models], resources=resources).success
    result = materialize(
        [dbt_incremental_models], resources=resources,
        tags=hourly_range_tags(T0, T0 + timedelta(hours=2)),
    )
    assert result.success

    t = lambda minute: T0 + timedelta(minutes=minute)  # noqa: E731
    # Completeness counts both of F1's registered meters, also where M2 sent nothing;
    # average demand is over the time each meter's readings cover (M1 4 kWh in 15 min,
    # M2 1 kWh in 10 min; 3 kWh in the 5 minutes of the next quarter is 36 kW, as read).
    assert fct(engine) == [
        ("F1", t(0), 5.0, pytest.approx(22.0), 12.0, 30.0, 5, 2, pytest.approx(0.8333, abs=1e-4)),
        ("F1", t(15), 3.0, pytest.approx(36.0), 36.0, 36.0, 1, 1, pytest.approx(0.1667, abs=1e-4)),
        ("F1", t(60), 4.0, pytest.approx(48.0), 48.0, 48.0, 1, 1, pytest.approx(0.1667, abs=1e-4)),
        ("F2", t(30), 1.0, pytest.approx(4.0), 3.0, 6.0, 3, 1, pytest.approx(1.0)),
    ]

    # The source drops F2 from the first hour and revises F1: rebuilding that one
    # partition replaces its window (F2 is gone, not left stale) and leaves hour two alone.
    load(engine, [reading("F1", "M1", 0, 1.5, 18.0)], T0)
    assert materialize([dbt_incremental_models], resources=resources, partition_key="2026-01-05-10:00").success
    assert fct(engine) == [
        ("F1", t(0), 1.5, pytest.approx(18.0), 18.0, 18.0, 1, 1, pytest.approx(0.1667, abs=1e-4)),
        ("F1", t(60), 4.0, pytest.approx(48.0), 48.0, 48.0, 1, 1, pytest.approx(0.1667, abs=1e-4)),
    ]


def test_dbt_checks_run_as_asset_checks(engine, resources):
    cwd = os.getcwd()
    result = materialize([dbt_models], resources=resources)
    # dagster-dbt's row-count threads left the process in dbt_project/ (issue 18): a run's
    # code origin and every relative path resolved there afterwards.
    assert os.getcwd() == cwd
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["not_null_stg_meter_readings_meter_id"] is True
    assert checks["not_null_stg_meter_readings_reading_at"] is True
