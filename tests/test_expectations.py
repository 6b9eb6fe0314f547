"""The raw-table expectation suites, run by Great Expectations inside real PostgreSQL.

Known rows go into windows far from any other test's data (May 2031); each test asserts
what an operator reads in the check result: which rule failed, how many rows, which
values.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import (
    AssetCheckSpec,
    MaterializeResult,
    StaticPartitionsDefinition,
    asset,
    materialize,
)

from resources import expectations as ex
from resources.copy_loader import ensure_day_partitions
from resources.readings_loader import partition_name
from tests.conftest import wait_for

DAY = datetime(2031, 5, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
CLEAN, BAD_PF, SPARSE, NEIGHBOUR_BEFORE, NEIGHBOUR_AFTER = (DAY + h * HOUR for h in (11, 13, 15, 10, 12))
METERS = 60
ROWS_PER_HOUR = METERS * 4  # 15-minute readings
MIN_ROWS = int(ROWS_PER_HOUR * 0.9)

# The feed tables, for a schema file that does not create them yet (same columns).
FEED_TABLES = """
create table if not exists raw.weather_hourly (
    facility_id text not null, time timestamptz not null, temperature_c double precision,
    relative_humidity_pct double precision, cloud_cover_pct double precision,
    shortwave_radiation_w_m2 double precision, wind_speed_kmh double precision,
    is_forecast boolean not null, source text not null, issued_at timestamptz,
    _loaded_at timestamptz not null default now(), primary key (facility_id, time));
create table if not exists raw.grid_prices (
    zone text not null, interval_start timestamptz not null, interval_end timestamptz not null,
    resolution text not null, price_per_mwh double precision not null, currency text not null,
    source text not null, intervals integer, _loaded_at timestamptz not null default now(),
    primary key (zone, source, resolution, interval_start));
create table if not exists raw.grid_carbon_intensity (
    zone text not null, hour_start timestamptz not null, factor_type text not null,
    carbon_intensity_g_per_kwh double precision not null, is_estimated boolean not null,
    estimation_method text, _loaded_at timestamptz not null default now(),
    primary key (zone, factor_type, hour_start));
"""


def insert_readings(conn: sa.Connection, table: str, hour: datetime, meters: int = METERS) -> None:
    conn.execute(
        sa.text(
            f"insert into {table} (ts, meter_id, facility_id, interval_s, energy_kwh, active_power_kw,"
            " reactive_power_kvar, voltage_v, current_a, power_factor, frequency_hz, energy_source)"
            " select :hour + q * interval '15 minutes', 'GXT-' || lpad(m::text, 3, '0'), 'GXF-' || (m % 6),"
            " 900, 1.5, 6.0, 1.2, 230.0, 26.0, 0.95, 50.0, case when m % 10 = 0 then 'solar' else 'grid' end"
            " from generate_series(0, :meters - 1) m, generate_series(0, 3) q"
        ),
        {"hour": hour, "meters": meters},
    )


def spoil(conn: sa.Connection, table: str, hour: datetime, column: str, values: list) -> None:
    """Give the first len(values) meters' first reading of `hour` these values of `column`."""
    for i, value in enumerate(values):
        conn.execute(
            sa.text(f"update {table} set {column} = :value where ts = :hour and meter_id = :meter"),
            {"value": value, "hour": hour, "meter": f"GXT-{i:03d}"},
        )


@pytest.fixture(scope="module")
def readings(engine: sa.Engine) -> None:
    """Hours of raw.meter_readings in real hour partitions, as the loader lays them out."""
    ensure_day_partitions(engine, "raw.meter_readings", DAY, DAY + timedelta(days=1))
    with engine.begin() as conn:
        for hour in (NEIGHBOUR_BEFORE, CLEAN, NEIGHBOUR_AFTER, BAD_PF, SPARSE):
            conn.execute(sa.text(
                f"create table raw.{partition_name(hour)} partition of raw.meter_readings_{hour:%Y%m%d}"
                f" for values from ('{hour.isoformat()}') to ('{(hour + HOUR).isoformat()}')"
            ))
        for hour in (NEIGHBOUR_BEFORE, CLEAN, NEIGHBOUR_AFTER, BAD_PF):
            insert_readings(conn, "raw.meter_readings", hour)
        insert_readings(conn, "raw.meter_readings", SPARSE, meters=25)
        spoil(conn, "raw.meter_readings", BAD_PF, "power_factor", [1.3, 2.0, 1.3])
        # Bad rows just outside the clean hour, which its check must not see.
        spoil(conn, "raw.meter_readings", NEIGHBOUR_BEFORE, "power_factor", [5.0])
        spoil(conn, "raw.meter_readings", NEIGHBOUR_AFTER, "energy_kwh", [-1.0, None])
    yield
    with engine.begin() as conn:
        conn.execute(sa.text(f"drop table if exists raw.meter_readings_{DAY:%Y%m%d}"))


@pytest.fixture(scope="module")
def feeds(engine: sa.Engine) -> None:
    with engine.begin() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(FEED_TABLES)
    yield
    with engine.begin() as conn:
        conn.execute(sa.text("delete from raw.weather_hourly where facility_id like 'GXT-%'"))
        conn.execute(sa.text("delete from raw.grid_prices where zone like 'GXT-%'"))
        conn.execute(sa.text("delete from raw.grid_carbon_intensity where zone like 'GXT-%'"))


def failure(outcome: ex.SuiteOutcome, expectation: str, column: str) -> ex.Failure:
    found = [f for f in outcome.failures if f.expectation == expectation and column in f.columns]
    assert len(found) == 1, outcome.description()
    return found[0]


def test_importing_the_module_does_not_import_great_expectations():
    code = "import sys, resources.expectations; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_clean_hour_passes_and_its_neighbours_bad_rows_are_not_judged(warehouse, readings):
    outcome = ex.validate(warehouse.sqlalchemy_url, ex.meter_readings_suite(MIN_ROWS), CLEAN, CLEAN + HOUR)

    assert outcome.passed, outcome.description()
    assert outcome.row_count == ROWS_PER_HOUR
    assert outcome.evaluated_expectations == outcome.successful_expectations == 9
    assert outcome.description().endswith("all 9 expectations met on 240 rows.")
    metadata = outcome.metadata()
    assert metadata["row_count"] == ROWS_PER_HOUR and metadata["failed_expectations"] == 0
    assert "failures" not in metadata

    # The same bad rows fail the hours that hold them.
    before = ex.validate(warehouse.sqlalchemy_url, ex.meter_readings_suite(MIN_ROWS), NEIGHBOUR_BEFORE, NEIGHBOUR_BEFORE + HOUR)
    assert failure(before, "expect_column_values_to_be_between", "power_factor").sample_values == (5.0,)
    after = ex.validate(warehouse.sqlalchemy_url, ex.meter_readings_suite(MIN_ROWS), NEIGHBOUR_AFTER, NEIGHBOUR_AFTER + HOUR)
    assert {(f.expectation, f.columns, f.unexpected_count) for f in after.failures} == {
        ("expect_column_values_to_be_between", ("energy_kwh",), 1),
        ("expect_column_values_to_not_be_null", ("energy_kwh",), 1),
    }


def test_power_factor_above_one_fails_with_count_and_values(warehouse, readings):
    outcome = ex.validate(warehouse.sqlalchemy_url, ex.meter_readings_suite(MIN_ROWS), BAD_PF, BAD_PF + HOUR)

    assert not outcome.passed
    assert len(outcome.failures) == 1
    pf = failure(outcome, "expect_column_values_to_be_between", "power_factor")
    assert pf.unexpected_count == 3
    assert pf.unexpected_percent == pytest.approx(100 * 3 / ROWS_PER_HOUR)
    assert sorted(pf.sample_values) == [1.3, 2.0]
    assert pf.description.startswith("power_factor must be between 0 and 1: 3 of 240 rows are not, e.g. ")
    assert "power_factor must be between 0 and 1" in outcome.description()

    metadata = outcome.metadata()
    assert metadata["failed_expectations"] == 1 and metadata["successful_expectations"] == 8
    assert all(isinstance(v, (str, int, float)) for k, v in metadata.items() if k != "failures")
    table = metadata["failures"].value
    assert "| expect_column_values_to_be_between | power_factor | 3 |" in table and "2.0" in table
    check = outcome.check_result(check_name="raw_expectations")
    assert check.passed is False and check.check_name == "raw_expectations"


def test_a_half_empty_hour_fails_the_row_count(warehouse, readings):
    outcome = ex.validate(warehouse.sqlalchemy_url, ex.meter_readings_suite(MIN_ROWS), SPARSE, SPARSE + HOUR)

    assert [f.expectation for f in outcome.failures] == ["expect_table_row_count_to_be_between"]
    (short,) = outcome.failures
    assert short.observed_value == 100 and outcome.row_count == 100
    assert short.description == f"raw.meter_readings must have at least {MIN_ROWS} rows in the window: it has 100"


def test_duplicate_keys_fail_in_a_table_without_a_primary_key(warehouse, engine):
    # raw.meter_readings' primary key makes a duplicate impossible there, so the rule is
    # exercised on a copy with the same columns and no key, through the table override.
    hour = DAY + 20 * HOUR
    with engine.begin() as conn:
        conn.execute(sa.text("create schema if not exists gx_test"))
        conn.execute(sa.text("create table gx_test.readings_copy (like raw.meter_readings including defaults)"))
        insert_readings(conn, "gx_test.readings_copy", hour)
        insert_readings(conn, "gx_test.readings_copy", hour + HOUR, meters=2)
        duplicate = "insert into gx_test.readings_copy select * from gx_test.readings_copy where ts = :ts and meter_id = :m"
        conn.execute(sa.text(duplicate), {"ts": hour, "m": "GXT-007"})
        conn.execute(sa.text(duplicate), {"ts": hour + 15 * timedelta(minutes=1), "m": "GXT-042"})
        conn.execute(sa.text(duplicate), {"ts": hour + HOUR, "m": "GXT-001"})  # the next hour's
    try:
        outcome = ex.validate(
            warehouse.sqlalchemy_url, ex.meter_readings_suite(MIN_ROWS), hour, hour + HOUR, table="gx_test.readings_copy"
        )
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("drop schema gx_test cascade"))

    assert outcome.table == "gx_test.readings_copy"
    assert [f.expectation for f in outcome.failures] == ["expect_compound_columns_to_be_unique"]
    (dup,) = outcome.failures
    assert dup.columns == ("meter_id", "ts")
    assert dup.unexpected_count == 4  # both rows of each of the two duplicated keys
    assert set(dup.sample_values) == {
        ("GXT-007", hour.isoformat()),
        ("GXT-042", (hour + timedelta(minutes=15)).isoformat()),
    }
    assert dup.description.startswith("(meter_id, ts) must be unique: 4 of 242 rows share their key with another row")


def test_revalidating_a_window_sees_the_data_as_it_is_now(warehouse, engine, readings):
    # A rerun of a partition after its data was fixed must not be answered from a cache.
    window = (BAD_PF, BAD_PF + HOUR)
    assert not ex.validate(warehouse.sqlalchemy_url, ex.meter_readings_suite(MIN_ROWS), *window).passed
    with engine.begin() as conn:
        conn.execute(sa.text("update raw.meter_readings set power_factor = 0.95 where ts = :h and power_factor > 1"), {"h": BAD_PF})
    try:
        assert ex.validate(warehouse.sqlalchemy_url, ex.meter_readings_suite(MIN_ROWS), *window).passed
    finally:
        with engine.begin() as conn:
            spoil(conn, "raw.meter_readings", BAD_PF, "power_factor", [1.3, 2.0, 1.3])


def test_validations_leave_no_connections_open(warehouse, engine, readings):
    def connections() -> int:
        # Client backends only: an autovacuum worker visiting the database is not a leak.
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "select count(*) from pg_stat_activity"
                " where datname = current_database() and backend_type = 'client backend'"
            )).scalar()

    before = connections()
    for _ in range(3):
        ex.validate(warehouse.sqlalchemy_url, ex.meter_readings_suite(MIN_ROWS, unique_key=False), CLEAN, CLEAN + HOUR)
    # A closed connection's backend exits after the client has gone, so a busy server lists
    # it for a moment; a leaked one stays, and the wait fails.
    wait_for(lambda: connections() == before, 30, "the validations' connections to close")


def test_weather_humidity_over_100_fails(warehouse, engine, feeds):
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into raw.weather_hourly (facility_id, time, temperature_c, relative_humidity_pct, cloud_cover_pct,"
            " shortwave_radiation_w_m2, wind_speed_kmh, is_forecast, source)"
            " select 'GXT-' || f, :day + h * interval '1 hour', 14.5, 60, 40, greatest(0, 600 - 50 * abs(h - 12)), 12, false, 'test'"
            " from generate_series(1, 3) f, generate_series(0, 23) h"
        ), {"day": DAY})
    suite = ex.weather_hourly_suite(min_rows=72)
    assert ex.validate(warehouse.sqlalchemy_url, suite, DAY, DAY + timedelta(days=1)).passed

    with engine.begin() as conn:
        conn.execute(sa.text(
            "update raw.weather_hourly set relative_humidity_pct = 130 where facility_id = 'GXT-2' and time < :t"
        ), {"t": DAY + 2 * HOUR})
    outcome = ex.validate(warehouse.sqlalchemy_url, suite, DAY, DAY + timedelta(days=1))
    humid = failure(outcome, "expect_column_values_to_be_between", "relative_humidity_pct")
    assert (humid.unexpected_count, humid.sample_values) == (2, (130.0,))
    assert humid.description == "relative_humidity_pct must be between 0 and 100: 2 of 72 rows are not, e.g. 130.0"
    assert len(outcome.failures) == 1


def test_prices_ending_before_they_start_and_unknown_currencies_fail(warehouse, engine, feeds):
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into raw.grid_prices (zone, interval_start, interval_end, resolution, price_per_mwh, currency, source)"
            " select 'GXT-Z', :day + i * interval '5 minutes', :day + (i + 1) * interval '5 minutes', '5min',"
            " case when i = 7 then -40.5 else 31.0 end, 'USD', 'test'"
            " from generate_series(0, 287) i"
        ), {"day": DAY})
        conn.execute(sa.text(
            "update raw.grid_prices set interval_end = interval_start where zone = 'GXT-Z' and interval_start = :t"
        ), {"t": DAY + 3 * HOUR})
        conn.execute(sa.text(
            "update raw.grid_prices set currency = 'XBT' where zone = 'GXT-Z' and interval_start >= :t"
        ), {"t": DAY + 23 * HOUR})
    outcome = ex.validate(warehouse.sqlalchemy_url, ex.grid_prices_suite(min_rows=288), DAY, DAY + timedelta(days=1))

    assert {f.expectation for f in outcome.failures} == {
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_values_to_be_in_set",
    }
    order = failure(outcome, "expect_column_pair_values_a_to_be_greater_than_b", "interval_end")
    at = (DAY + 3 * HOUR).isoformat()
    assert (order.unexpected_count, order.sample_values) == (1, ((at, at),))
    assert order.description.startswith("interval_end must be greater than interval_start: 1 of 288 rows are not")
    currency = failure(outcome, "expect_column_values_to_be_in_set", "currency")
    assert (currency.unexpected_count, currency.sample_values) == (12, ("XBT",))
    # A negative price is a real market outcome, not a failure.
    assert not any("price_per_mwh" in f.columns for f in outcome.failures)


def test_carbon_intensity_unknown_factor_type_and_too_few_hours_fail(warehouse, engine, feeds):
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into raw.grid_carbon_intensity (zone, hour_start, factor_type, carbon_intensity_g_per_kwh, is_estimated)"
            " select 'GXT-Z', :day + h * interval '1 hour', t, 420 + h, false"
            " from generate_series(0, 23) h, unnest(array['lifecycle', 'direct']) t where h < 20"
        ), {"day": DAY})
        conn.execute(sa.text(
            "update raw.grid_carbon_intensity set factor_type = 'marginal' where zone = 'GXT-Z' and hour_start = :t and factor_type = 'direct'"
        ), {"t": DAY})
    outcome = ex.validate(warehouse.sqlalchemy_url, ex.grid_carbon_intensity_suite(min_rows=48), DAY, DAY + timedelta(days=1))

    kind = failure(outcome, "expect_column_values_to_be_in_set", "factor_type")
    assert (kind.unexpected_count, kind.sample_values) == (1, ("marginal",))
    assert kind.description == "factor_type must be one of lifecycle, direct: 1 of 40 rows are not, e.g. marginal"
    (count,) = [f for f in outcome.failures if f.expectation == "expect_table_row_count_to_be_between"]
    assert count.observed_value == 40
    assert len(outcome.failures) == 2


def test_a_naive_window_is_refused(warehouse):
    with pytest.raises(ValueError, match="timezone-aware"):
        ex.validate(warehouse.sqlalchemy_url, ex.grid_carbon_intensity_suite(0), datetime(2031, 5, 1), datetime(2031, 5, 2))


def test_a_blocking_asset_check_keeps_downstream_assets_off_a_failed_hour(warehouse, readings):
    # Hour keys as the hourly partitions name them; static, because 2031 is not yet a
    # partition of a time-based definition.
    hours = StaticPartitionsDefinition([f"{CLEAN:%Y-%m-%d-%H:%M}", f"{BAD_PF:%Y-%m-%d-%H:%M}"])

    @asset(partitions_def=hours, check_specs=[AssetCheckSpec("raw_expectations", asset="hour_of_readings", blocking=True)])
    def hour_of_readings(context) -> MaterializeResult:
        start = datetime.strptime(context.partition_key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
        outcome = ex.validate(warehouse.sqlalchemy_url, ex.meter_readings_suite(MIN_ROWS), start, start + HOUR)
        return MaterializeResult(check_results=[outcome.check_result(check_name="raw_expectations")])

    @asset(partitions_def=hours, deps=[hour_of_readings])
    def hourly_load() -> None:
        pass

    clean = materialize([hour_of_readings, hourly_load], partition_key=f"{CLEAN:%Y-%m-%d-%H:%M}")
    assert clean.success
    assert [e.asset_key.path for e in clean.get_asset_materialization_events()] == [["hour_of_readings"], ["hourly_load"]]

    bad = materialize([hour_of_readings, hourly_load], partition_key=f"{BAD_PF:%Y-%m-%d-%H:%M}", raise_on_error=False)
    assert not bad.success
    assert [e.asset_key.path for e in bad.get_asset_materialization_events()] == [["hour_of_readings"]]
    (evaluation,) = bad.get_asset_check_evaluations()
    assert not evaluation.passed
    assert "power_factor must be between 0 and 1: 3 of 240 rows" in evaluation.description
    assert "| expect_column_values_to_be_between | power_factor | 3 |" in evaluation.metadata["failures"].value
    assert evaluation.metadata["row_count"].value == ROWS_PER_HOUR


def test_a_rule_on_a_column_the_table_no_longer_has_fails_and_says_why(warehouse, readings):
    from great_expectations.expectations import ExpectColumnValuesToNotBeNull

    base = ex.meter_readings_suite(MIN_ROWS)
    renamed = ex.Suite(base.name, base.table, base.time_column, (*base.expectations, ExpectColumnValuesToNotBeNull(column="energy_kwh_total")))
    outcome = ex.validate(warehouse.sqlalchemy_url, renamed, CLEAN, CLEAN + HOUR)

    (missing,) = outcome.failures
    assert missing.columns == ("energy_kwh_total",)
    assert missing.description.startswith("energy_kwh_total must not be null: could not be checked (")
    assert "does not exist" in missing.description
