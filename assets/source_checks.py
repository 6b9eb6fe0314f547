"""Great Expectations suites on every raw table, as Dagster asset checks per partition.

Each check validates the window its run materialised, inside PostgreSQL
(`resources/expectations.py`). The meter-readings check is blocking: a window that
fails it keeps the dbt models downstream from building in the same run, and the
automation that builds them later sees the failed check. The weather, price and carbon
checks warn: a gap in those feeds degrades the marts' context columns, it does not
make the load figures wrong.

Completeness thresholds are set from what the registry says should have arrived, so a
head-end outage that delivers a half-empty hour fails, while one silent meter does not.
"""

import math
from datetime import UTC, datetime

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    asset_check,
)

from assets.carbon import grid_zones
from assets.prices import price_zones
from assets.telemetry import LOADED_AS_OF, READINGS
from assets.weather import facility_locations
from orchestration.partitions import daily_partitions, hourly_partitions
from resources.postgres import PostgresResource

# Share of the expected readings a window must hold to pass: below this, the window is
# more likely a head-end outage than a few meters offline.
READINGS_COMPLETENESS = 0.8
# Daily feeds: share of the expected points (zones/facilities × intervals elapsed).
FEED_COMPLETENESS = 0.9


def _elapsed(start: datetime, end: datetime, as_of: datetime | None = None) -> float:
    """Seconds of [start, end) past at `as_of` (now): the open partition is judged on what could have arrived."""
    return max(0.0, (min(end, as_of or datetime.now(UTC)) - start).total_seconds())


def expected_readings(postgres: PostgresResource, start: datetime, end: datetime, as_of: datetime | None = None) -> int:
    """Readings the active meters owe for [start, end) at `as_of`: each meter one per
    interval ended by then."""
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        elapsed = int(_elapsed(start, end, as_of))
        cur.execute("select coalesce(sum(%s / interval_s), 0) from raw.meters where active", (elapsed,))
        return int(cur.fetchone()[0])


def loaded_as_of(context: AssetCheckExecutionContext) -> datetime | None:
    """When the head-end answered the last load of the window's last hour (that
    materialisation's `loaded_as_of`), or None if no load recorded it.

    The check runs after the load, seconds or (rechecked) hours later, while the open
    hour holds only the readings that had ended when it was asked for: judged as of now,
    the first load of every hour (at :00, with nothing to deliver yet) would fail."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=READINGS, asset_partitions=[context.partition_key_range.end]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get(LOADED_AS_OF)
    return datetime.fromtimestamp(value.value, UTC) if value is not None else None


def _run(postgres: PostgresResource, suite, start: datetime, end: datetime, severity=AssetCheckSeverity.ERROR) -> AssetCheckResult:
    from resources.expectations import validate

    outcome = validate(postgres.database.sqlalchemy_url, suite, start, end)
    return outcome.check_result(severity=severity)


@asset_check(
    asset=READINGS,
    name="readings_expectations",
    blocking=True,
    partitions_def=hourly_partitions,
)
def readings_expectations(context: AssetCheckExecutionContext, postgres: PostgresResource) -> AssetCheckResult:
    """Great Expectations on the loaded window of `raw.meter_readings`: at least 80 % of
    the readings the active meters owe, every reading with a meter, facility and energy,
    energy ≥ 0, power factor within [0, 1], voltage within 80–600 V, a known energy
    source. Blocking: the marts are not built on a window that fails."""
    from resources.expectations import meter_readings_suite

    window = context.partition_time_window
    as_of = loaded_as_of(context)
    minimum = math.floor(READINGS_COMPLETENESS * expected_readings(postgres, window.start, window.end, as_of))
    # The primary key already makes (meter_id, ts) unique; checking it again would
    # triple the cost of the check.
    return _run(postgres, meter_readings_suite(minimum, unique_key=False), window.start, window.end)


@asset_check(asset=AssetKey(["raw", "weather_hourly"]), name="weather_expectations", partitions_def=daily_partitions)
def weather_expectations(context: AssetCheckExecutionContext, postgres: PostgresResource) -> AssetCheckResult:
    """Great Expectations on the day of `raw.weather_hourly`: an hour for (nearly) every
    active facility with coordinates, temperature within −80–60 °C, humidity and cloud
    cover within 0–100 %, radiation within 0–1500 W/m², wind within 0–400 km/h. Warns."""
    from resources.expectations import weather_hourly_suite

    window = context.partition_time_window
    cells, _ = facility_locations(postgres)
    facilities = sum(len(ids) for ids in cells.values())
    # The open day holds observed and forecast hours: all 24.
    minimum = math.floor(FEED_COMPLETENESS * facilities * 24)
    return _run(postgres, weather_hourly_suite(minimum), window.start, window.end, AssetCheckSeverity.WARN)


@asset_check(asset=AssetKey(["raw", "grid_prices"]), name="price_expectations", partitions_def=daily_partitions)
def price_expectations(context: AssetCheckExecutionContext, postgres: PostgresResource) -> AssetCheckResult:
    """Great Expectations on the day of `raw.grid_prices`: (nearly) every 5-minute price
    elapsed for every price zone, prices within −1,000–20,000 per MWh (negative prices
    happen), a known currency and resolution, each interval ending after it starts. Warns."""
    from resources.expectations import grid_prices_suite

    window = context.partition_time_window
    zones = len(price_zones(postgres))
    minimum = math.floor(FEED_COMPLETENESS * zones * (_elapsed(window.start, window.end) // 300))
    return _run(postgres, grid_prices_suite(minimum), window.start, window.end, AssetCheckSeverity.WARN)


@asset_check(asset=AssetKey(["raw", "grid_carbon_intensity"]), name="carbon_expectations", partitions_def=daily_partitions)
def carbon_expectations(context: AssetCheckExecutionContext, postgres: PostgresResource) -> AssetCheckResult:
    """Great Expectations on the day of `raw.grid_carbon_intensity`: (nearly) every hour
    elapsed for every grid zone, intensity within 0–2,000 gCO2eq/kWh, a known factor
    type. Warns."""
    from resources.expectations import grid_carbon_intensity_suite

    window = context.partition_time_window
    zones = len(grid_zones(postgres))
    hours = math.ceil(_elapsed(window.start, window.end) / 3600)
    minimum = math.floor(FEED_COMPLETENESS * zones * hours)
    return _run(postgres, grid_carbon_intensity_suite(minimum), window.start, window.end, AssetCheckSeverity.WARN)


SOURCE_CHECKS = [readings_expectations, weather_expectations, price_expectations, carbon_expectations]
