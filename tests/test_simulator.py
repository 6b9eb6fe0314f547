"""The simulator over real HTTP: deterministic, believable, and in the real formats."""

import csv
import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import requests

from simulator import weather
from simulator.config import SimulatorConfig
from simulator.fleet import build_fleet
from simulator.readings import COLUMNS
from simulator.server import SimulatorServer

NOW = datetime(2026, 7, 16, 12, 0, tzinfo=UTC)  # a Thursday


def clock():
    return NOW


@pytest.fixture(scope="module")
def sim():
    with SimulatorServer(SimulatorConfig(seed=5, facilities=8, interval_s=300, now=clock)) as server:
        yield server


def get(sim, path, **params):
    return requests.get(f"{sim.url}{path}", params=params, timeout=30)


def readings(sim, start: datetime, end: datetime, **params) -> pd.DataFrame:
    response = get(sim, "/v1/readings", start=start.isoformat(), end=end.isoformat(), **params)
    assert response.status_code == 200, response.text
    return pd.read_csv(io.StringIO(response.text), parse_dates=["ts"])


def facility_kw(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby(["facility_id", "ts"])["active_power_kw"].sum()


def test_same_seed_same_bytes_other_seed_other_values(sim):
    params = {"start": "2026-07-14T00:00:00Z", "end": "2026-07-14T06:00:00Z"}
    first = get(sim, "/v1/readings", **params).content
    assert get(sim, "/v1/readings", **params).content == first
    with SimulatorServer(SimulatorConfig(seed=5, facilities=8, interval_s=300, now=clock)) as twin:
        assert get(twin, "/v1/readings", **params).content == first
    with SimulatorServer(SimulatorConfig(seed=6, facilities=8, interval_s=300, now=clock)) as other:
        assert get(other, "/v1/readings", **params).content != first


def test_overlapping_windows_agree_on_the_overlap(sim):
    wide = readings(sim, datetime(2026, 7, 14, tzinfo=UTC), datetime(2026, 7, 15, tzinfo=UTC))
    narrow = readings(sim, datetime(2026, 7, 14, 10, 35, tzinfo=UTC), datetime(2026, 7, 14, 12, 5, tzinfo=UTC))
    overlap = wide[(wide.ts >= narrow.ts.min()) & (wide.ts <= narrow.ts.max())].reset_index(drop=True)
    pd.testing.assert_frame_equal(overlap, narrow)


def test_csv_columns_and_a_row_per_meter_and_interval(sim):
    meters = get(sim, "/v1/meters").json()
    text = get(sim, "/v1/readings", start="2026-07-14T10:00:00Z", end="2026-07-14T11:00:00Z").text
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) - 1 == len(meters) * 12
    assert rows[1][0] == "2026-07-14T10:00:00Z"
    frame = pd.read_csv(io.StringIO(text))
    assert (frame.energy_kwh >= 0).all() and frame.notna().all().all()
    assert (frame.power_factor <= 1).all() and (frame.voltage_v > 100).all()
    # Energy over an interval and its average power agree, to the power's 3 decimals.
    np.testing.assert_allclose(frame.energy_kwh, frame.active_power_kw * 300 / 3600, rtol=0, atol=0.0005 * 300 / 3600 + 1e-6)


def test_registry_describes_facilities_and_their_meters(sim):
    facilities = get(sim, "/v1/facilities").json()
    meters = get(sim, "/v1/meters").json()
    assert len(facilities) == 8
    assert {f["archetype"] for f in facilities} >= {"office", "retail", "warehouse", "data_centre", "hospital", "crypto_mining", "home_pv_battery"}
    for facility in facilities:
        assert facility["contract_demand_kw"] > 0 and facility["timezone"] and facility["grid_zone"]
    assert {m["facility_id"] for m in meters} == {f["facility_id"] for f in facilities}
    assert {m["energy_source"] for m in meters} <= {"grid", "solar", "wind", "natural_gas", "coal", "nuclear", "hydro", "battery"}


def test_load_shapes_are_believable(sim):
    facilities = {f["archetype"]: f for f in get(sim, "/v1/facilities").json()}
    week = readings(sim, datetime(2026, 7, 6, tzinfo=UTC), datetime(2026, 7, 13, tzinfo=UTC))
    kw = facility_kw(week).reset_index()

    def local(archetype):
        facility = facilities[archetype]
        rows = kw[kw.facility_id == facility["facility_id"]].copy()
        rows["local"] = rows.ts.dt.tz_convert(facility["timezone"])
        return rows

    office = local("office")
    weekday = office[office.local.dt.day_of_week < 5]
    day = weekday[weekday.local.dt.hour.between(10, 15)].active_power_kw.mean()
    night = weekday[weekday.local.dt.hour.between(1, 4)].active_power_kw.mean()
    assert day > 2 * night

    centre = local("data_centre").active_power_kw
    assert centre.std() / centre.mean() < 0.15  # flat, cooling follows the weather

    home = facilities["home_pv_battery"]
    solar = week[(week.facility_id == home["facility_id"]) & (week.energy_source == "solar")].copy()
    solar["hour"] = solar.ts.dt.tz_convert(home["timezone"]).dt.hour
    assert solar[solar.hour.isin([0, 1, 2, 3, 23])].active_power_kw.max() == 0
    assert solar[solar.hour.between(11, 13)].active_power_kw.mean() > 0.5


def test_no_reading_from_the_future(sim):
    frame = readings(sim, NOW - timedelta(hours=1), NOW + timedelta(hours=5))
    assert frame.ts.max() + timedelta(seconds=300) <= NOW
    assert frame.ts.min() == NOW - timedelta(hours=1)


def test_modes_outage_removes_rows_and_peak_raises_load(sim):
    window = {"start": "2026-07-15T08:00:00Z", "end": "2026-07-15T09:00:00Z"}
    before = facility_kw(readings(sim, datetime(2026, 7, 15, 8, tzinfo=UTC), datetime(2026, 7, 15, 9, tzinfo=UTC)))
    assert requests.post(f"{sim.url}/v1/sim/modes", json={"facility_id": "FAC-0001", "mode": "outage", **window}, timeout=5).status_code == 201
    assert requests.post(f"{sim.url}/v1/sim/modes", json={"facility_id": "FAC-0002", "mode": "peak", **window}, timeout=5).status_code == 201
    assert len(get(sim, "/v1/sim/modes").json()) == 2
    after = readings(sim, datetime(2026, 7, 15, 7, tzinfo=UTC), datetime(2026, 7, 15, 10, tzinfo=UTC))
    outage = after[after.facility_id == "FAC-0001"]
    assert not ((outage.ts >= "2026-07-15T08:00:00Z") & (outage.ts < "2026-07-15T09:00:00Z")).any()
    assert (outage.ts < "2026-07-15T08:00:00Z").any() and (outage.ts >= "2026-07-15T09:00:00Z").any()
    peak = facility_kw(after[(after.ts >= "2026-07-15T08:00:00Z") & (after.ts < "2026-07-15T09:00:00Z")])
    assert peak["FAC-0002"].sum() == pytest.approx(1.35 * before["FAC-0002"].sum(), rel=1e-3)
    bad = requests.post(f"{sim.url}/v1/sim/modes", json={"facility_id": "FAC-9999", "mode": "outage", **window}, timeout=5)
    assert bad.status_code == 400 and "FAC-9999" in bad.json()["detail"]


def test_bad_rows_come_in_every_kind_only_when_asked():
    config = SimulatorConfig(seed=3, facilities=10, interval_s=60, bad_row_rate=0.05, now=clock)
    params = {"start": "2026-07-14T00:00:00Z", "end": "2026-07-14T06:00:00Z"}
    with SimulatorServer(config) as server:
        frame = pd.read_csv(io.StringIO(get(server, "/v1/readings", **params).text))
    known = {m.meter_id for m in build_fleet(3, 10).meters}
    ts = pd.to_datetime(frame.ts)
    kinds = {
        "negative": (frame.energy_kwh < 0).sum(),
        "nan": frame.energy_kwh.isna().sum(),
        "pf_above_one": (frame.power_factor > 1).sum(),
        "zero_voltage": (frame.voltage_v == 0).sum(),
        "future": (ts > NOW).sum(),
        "duplicate": frame.duplicated().sum(),
        "unknown_meter": (~frame.meter_id.isin(known)).sum(),
    }
    assert all(count > 0 for count in kinds.values()), kinds
    assert sum(kinds.values()) == pytest.approx(0.05 * len(frame), rel=0.15)

    with SimulatorServer(SimulatorConfig(seed=3, facilities=10, interval_s=60, now=clock)) as clean:
        frame = pd.read_csv(io.StringIO(get(clean, "/v1/readings", **params).text))
    assert (frame.energy_kwh >= 0).all() and not frame.duplicated().any() and frame.meter_id.isin(known).all()


def test_open_meteo_format_matches_the_temperature_that_drives_the_meters(sim):
    office = next(f for f in get(sim, "/v1/facilities").json() if f["archetype"] == "office")
    body = get(sim, "/v1/archive", latitude=office["latitude"], longitude=office["longitude"],
               start_date="2026-07-10", end_date="2026-07-11",
               hourly="temperature_2m,relative_humidity_2m,cloud_cover,shortwave_radiation,wind_speed_10m").json()
    assert body["timezone"] == "GMT" and body["utc_offset_seconds"] == 0
    assert body["hourly_units"]["temperature_2m"] == "°C" and body["hourly_units"]["shortwave_radiation"] == "W/m²"
    assert body["hourly"]["time"][:2] == ["2026-07-10T00:00", "2026-07-10T01:00"]
    assert all(len(values) == 48 for values in body["hourly"].values())
    city = weather.nearest_city(office["latitude"], office["longitude"])
    t = int(datetime(2026, 7, 10, tzinfo=UTC).timestamp()) + 3600 * np.arange(48)
    np.testing.assert_allclose(body["hourly"]["temperature_2m"], weather.temperature_c(5, city, t), atol=0.051)

    local = get(sim, "/v1/forecast", latitude=office["latitude"], longitude=office["longitude"],
                hourly="temperature_2m", forecast_days=2, past_days=1, timezone="auto").json()
    assert local["timezone"] == office["timezone"] and local["utc_offset_seconds"] != 0
    assert len(local["hourly"]["time"]) == 72

    bad = get(sim, "/v1/forecast", latitude=41.9, longitude=-87.6, hourly="temperature_2m,snow_depth_metres")
    assert bad.status_code == 400 and bad.json()["error"] is True and "snow_depth_metres" in bad.json()["reason"]
    future = get(sim, "/v1/archive", latitude=41.9, longitude=-87.6, start_date="2026-07-16", end_date="2026-07-20", hourly="temperature_2m")
    assert future.status_code == 400


def test_comed_five_minute_feed_format(sim):
    feed = get(sim, "/api", type="5minutefeed").json()
    assert len(feed) == 288
    assert set(feed[0]) == {"millisUTC", "price"}
    assert all(isinstance(p["millisUTC"], str) and isinstance(p["price"], str) for p in feed)
    millis = [int(p["millisUTC"]) for p in feed]
    assert millis == sorted(millis, reverse=True)  # newest first
    assert millis[0] == int(NOW.timestamp()) * 1000
    assert all(b - a == -300_000 for a, b in zip(millis, millis[1:]))
    ranged = get(sim, "/api", type="5minutefeed", datestart="202607150700", dateend="202607150800").json()
    assert len(ranged) == 13  # inclusive of both ends
    assert get(sim, "/api", type="5minutefeed", zone="NOPE").status_code == 400
    day_ahead = get(sim, "/v1/prices/day-ahead", zone="COMED", date="2026-07-16").json()
    assert day_ahead["unit"] == "USD/MWh" and len(day_ahead["prices"]) == 24


def test_electricity_maps_format(sim):
    latest = get(sim, "/v3/carbon-intensity/latest", zone="DE").json()
    assert set(latest) == {"zone", "carbonIntensity", "datetime", "updatedAt", "createdAt", "emissionFactorType", "isEstimated", "estimationMethod"}
    assert latest["datetime"] == "2026-07-16T12:00:00.000Z" and latest["emissionFactorType"] == "lifecycle"
    history = get(sim, "/v3/carbon-intensity/history", zone="DE").json()["history"]
    assert len(history) == 24 and history[-1]["datetime"] == latest["datetime"]
    direct = get(sim, "/v3/carbon-intensity/history", zone="DE", emissionFactorType="direct").json()["history"]
    assert all(d["carbonIntensity"] < h["carbonIntensity"] for d, h in zip(direct, history))
    past = get(sim, "/v3/carbon-intensity/past-range", zone="GB", start="2026-07-14T00:00:00Z", end="2026-07-15T00:00:00Z").json()
    assert len(past["data"]) == 24 and {p["zone"] for p in past["data"]} == {"GB"}
    assert get(sim, "/v3/carbon-intensity/latest", zone="XX").status_code == 404


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ({"start": "2026-07-14T10:00:00Z", "end": "2026-07-14T09:00:00Z"}, "must be after start"),
        ({"start": "yesterday", "end": "2026-07-14T09:00:00Z"}, "not an ISO 8601"),
        ({"start": "2026-05-01T00:00:00Z", "end": "2026-07-01T00:00:00Z"}, "at most 31 days"),
        ({"start": "2026-07-14T09:00:00Z", "end": "2026-07-14T10:00:00Z", "facility_id": "FAC-0404"}, "unknown facility_id"),
        ({"end": "2026-07-14T10:00:00Z"}, "'start' is required"),
    ],
)
def test_readings_reject_bad_parameters_with_the_reason(sim, params, complaint):
    response = get(sim, "/v1/readings", **params)
    assert response.status_code == 400
    assert complaint in response.json()["detail"]


def test_ndjson_carries_the_same_readings_as_csv(sim):
    params = {"start": "2026-07-14T10:00:00Z", "end": "2026-07-14T10:30:00Z"}
    from_csv = pd.read_csv(io.StringIO(get(sim, "/v1/readings", **params).text))
    from_ndjson = pd.read_json(io.StringIO(get(sim, "/v1/readings", format="ndjson", **params).text), lines=True, dtype=False)
    pd.testing.assert_frame_equal(from_csv, from_ndjson[list(from_csv.columns)], check_dtype=False)
