"""Weather, price and carbon assets against the simulator and real PostgreSQL: each day
holds exactly what the source served, in the stored units; reloads replace; forecasts
give way to observations; a failing source writes nothing of the day."""

from datetime import UTC, datetime, timedelta
from statistics import mean
from zoneinfo import ZoneInfo

import pytest
import requests
import sqlalchemy as sa
from dagster import materialize

from assets.carbon import grid_carbon_intensity
from assets.prices import grid_prices
from assets.weather import weather_hourly
from simulator.config import SimulatorConfig
from simulator.server import SimulatorServer
from tests.conftest import failure_text, load_registry, source_resources

FACILITIES = 4
# Ten days back: a settled day, whatever day the session runs into.
PAST_DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=10)
PAST_KEY = f"{PAST_DAY:%Y-%m-%d}"


@pytest.fixture(scope="module")
def simulator():
    # The real clock: the open day's forecast horizon is measured against it.
    with SimulatorServer(SimulatorConfig(seed=5, facilities=FACILITIES, interval_s=900)) as server:
        yield server


@pytest.fixture(scope="module")
def resources(warehouse, simulator):
    load_registry(warehouse, simulator.url)
    return source_resources(warehouse, simulator.url, max_retries=0)


def rows(engine, query: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(query), params).all()


def facilities(engine) -> list:
    return rows(engine, "select facility_id, latitude, longitude, price_zone, grid_zone from raw.facilities where active")


def test_a_past_day_of_weather_is_the_archive_at_every_facility(engine, simulator, resources):
    result = materialize([weather_hourly], resources=resources, partition_key=PAST_KEY)
    assert result.success

    stored = rows(
        engine,
        "select facility_id, time, temperature_c, is_forecast, source, latitude, longitude from raw.weather_hourly "
        "where time >= :s and time < :e order by facility_id, time",
        s=PAST_DAY, e=PAST_DAY + timedelta(days=1),
    )
    assert len(stored) == FACILITIES * 24
    assert not any(row.is_forecast for row in stored)
    assert {row.source for row in stored} == {"archive"}
    # The values are what the archive serves for the facility's cell, hour by hour.
    first = stored[0]
    archive = requests.get(
        f"{simulator.url}/v1/archive",
        params={"latitude": first.latitude, "longitude": first.longitude, "hourly": "temperature_2m",
                "start_date": PAST_KEY, "end_date": PAST_KEY, "timezone": "GMT"},
        timeout=10,
    ).json()
    mine = [row.temperature_c for row in stored if row.facility_id == first.facility_id]
    assert mine == pytest.approx(archive["hourly"]["temperature_2m"])

    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["dagster/row_count"].value == FACILITIES * 24
    assert metadata["forecast_rows"].value == 0


def test_the_open_day_carries_48_hours_of_forecast_and_history_reloads_keep_it(engine, resources):
    # Today when the test runs, not when the module was imported (a session may cross midnight).
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert materialize([weather_hourly], resources=resources, partition_key=f"{today:%Y-%m-%d}").success
    now_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    ahead = rows(
        engine,
        "select facility_id, time, is_forecast, issued_at from raw.weather_hourly where time >= :t order by time",
        t=today,
    )
    observed = [row for row in ahead if not row.is_forecast]
    forecast = [row for row in ahead if row.is_forecast]
    assert observed and all(row.time <= now_hour for row in observed)
    assert all(row.time > now_hour and row.issued_at is not None for row in forecast)
    # The forecast reaches 48 hours past the current hour, for every facility.
    assert max(row.time for row in forecast) >= now_hour + timedelta(hours=48)
    assert len({row.facility_id for row in forecast}) == FACILITIES

    # Reloading a past day replaces that day only: the forecast ahead survives.
    assert materialize([weather_hourly], resources=resources, partition_key=PAST_KEY).success
    after = rows(engine, "select count(*) as n from raw.weather_hourly where is_forecast")[0].n
    assert after == len(forecast)


def test_a_reloaded_day_replaces_its_forecasts_with_observations(engine, resources):
    day = PAST_DAY - timedelta(days=1)
    key = f"{day:%Y-%m-%d}"
    facility_id = facilities(engine)[0].facility_id
    # What an earlier load made while this day was still ahead: forecasts, one of them
    # for an hour the archive has too.
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into raw.weather_hourly (facility_id, time, temperature_c, is_forecast, source, issued_at) "
                "values (:f, :t, 99.0, true, 'forecast', :t - interval '1 day')"
            ),
            {"f": facility_id, "t": day + timedelta(hours=12)},
        )
    assert materialize([weather_hourly], resources=resources, partition_key=key).success
    noon = rows(
        engine,
        "select temperature_c, is_forecast from raw.weather_hourly where facility_id = :f and time = :t",
        f=facility_id, t=day + timedelta(hours=12),
    )
    assert len(noon) == 1
    assert not noon[0].is_forecast and noon[0].temperature_c != 99.0


def test_a_day_of_prices_holds_every_5_minute_price_and_exact_hourly_averages(engine, simulator, resources):
    result = materialize([grid_prices], resources=resources, partition_key=PAST_KEY)
    assert result.success
    zones = sorted({f.price_zone for f in facilities(engine)})
    window = {"s": PAST_DAY, "e": PAST_DAY + timedelta(days=1)}
    five = rows(engine, "select zone, interval_start, price_per_mwh from raw.grid_prices "
                        "where resolution = '5min' and interval_start >= :s and interval_start < :e", **window)
    assert len(five) == 288 * len(zones)
    hourly = rows(engine, "select zone, interval_start, price_per_mwh, intervals from raw.grid_prices "
                          "where resolution = '1h' and source = 'comed_5min' and interval_start >= :s and interval_start < :e", **window)
    assert len(hourly) == 24 * len(zones) and {row.intervals for row in hourly} == {12}
    zone = zones[0]
    noon = PAST_DAY + timedelta(hours=12)
    in_hour = [row.price_per_mwh for row in five if row.zone == zone and noon <= row.interval_start < noon + timedelta(hours=1)]
    (stored,) = [row.price_per_mwh for row in hourly if row.zone == zone and row.interval_start == noon]
    assert stored == pytest.approx(mean(in_hour), abs=1e-3)

    # The feed's ¢/kWh × 10 = the price per MWh stored, price by price. ComEd's window is
    # wall-clock time where the zone is, both ends inclusive, stamped at interval ends.
    tz = ZoneInfo(rows(engine, "select min(timezone) as tz from raw.facilities where price_zone = :z", z=zone)[0].tz)
    feed = requests.get(
        f"{simulator.url}/api",
        params={"type": "5minutefeed", "zone": zone,
                "datestart": f"{(PAST_DAY + timedelta(minutes=5)).astimezone(tz):%Y%m%d%H%M}",
                "dateend": f"{(PAST_DAY + timedelta(days=1)).astimezone(tz):%Y%m%d%H%M}"},
        timeout=10,
    ).json()
    served = {datetime.fromtimestamp(int(p["millisUTC"]) / 1000 - 300, UTC): float(p["price"]) * 10 for p in feed}
    mine = {row.interval_start: row.price_per_mwh for row in five if row.zone == zone}
    assert mine.keys() == served.keys()
    assert all(mine[t] == pytest.approx(served[t]) for t in served)

    day_ahead = rows(engine, "select count(*) as n from raw.grid_prices where source = 'day_ahead' "
                             "and interval_start >= :s and interval_start < :e", **window)[0].n
    assert day_ahead == 24 * len(zones)

    # A rerun replaces: the same rows, not twice as many.
    before = rows(engine, "select count(*) as n, sum(price_per_mwh) as total from raw.grid_prices "
                          "where interval_start >= :s and interval_start < :e", **window)[0]
    assert materialize([grid_prices], resources=resources, partition_key=PAST_KEY).success
    after = rows(engine, "select count(*) as n, sum(price_per_mwh) as total from raw.grid_prices "
                         "where interval_start >= :s and interval_start < :e", **window)[0]
    assert after == before


def test_a_day_of_carbon_intensity_keeps_both_factor_types(engine, simulator, resources):
    result = materialize([grid_carbon_intensity], resources=resources, partition_key=PAST_KEY)
    assert result.success
    zones = sorted({f.grid_zone for f in facilities(engine)})
    stored = rows(
        engine,
        "select zone, factor_type, hour_start, carbon_intensity_g_per_kwh, is_estimated from raw.grid_carbon_intensity "
        "where hour_start >= :s and hour_start < :e order by zone, factor_type, hour_start",
        s=PAST_DAY, e=PAST_DAY + timedelta(days=1),
    )
    assert len(stored) == 24 * len(zones) * 2
    assert not any(row.is_estimated for row in stored)
    source = requests.get(
        f"{simulator.url}/v3/carbon-intensity/past-range",
        params={"zone": zones[0], "start": f"{PAST_KEY}T00:00:00Z", "end": f"{PAST_DAY + timedelta(days=1):%Y-%m-%d}T00:00:00Z",
                "emissionFactorType": "direct"},
        timeout=10,
    ).json()["data"]
    mine = [row.carbon_intensity_g_per_kwh for row in stored if row.zone == zones[0] and row.factor_type == "direct"]
    assert mine == [point["carbonIntensity"] for point in source]
    # Lifecycle intensity includes upstream emissions: never below direct.
    by_key = {(r.zone, r.hour_start, r.factor_type): r.carbon_intensity_g_per_kwh for r in stored}
    assert all(by_key[(z, h, "lifecycle")] >= by_key[(z, h, "direct")] for (z, h, f) in by_key if f == "direct")


def test_a_failing_zone_fails_the_day_and_writes_nothing(engine, warehouse, simulator, resources):
    day = PAST_DAY - timedelta(days=3)
    window = {"s": day, "e": day + timedelta(days=1)}
    count = "select count(*) as n from raw.grid_carbon_intensity where hour_start >= :s and hour_start < :e"
    assert rows(engine, count, **window)[0].n == 0
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into raw.facilities (facility_id, name, timezone, grid_zone) values ('F-NOWHERE', 'Nowhere', 'UTC', 'XX-NOWHERE')"
        ))
    try:
        result = materialize([grid_carbon_intensity], resources=resources, partition_key=f"{day:%Y-%m-%d}", raise_on_error=False)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("delete from raw.facilities where facility_id = 'F-NOWHERE'"))
    assert not result.success
    message = failure_text(result)
    assert "past-range" in message and "answered 400" in message and "XX-NOWHERE" in message
    # The zones that answered were not written either: the day is all or nothing.
    assert rows(engine, count, **window)[0].n == 0
