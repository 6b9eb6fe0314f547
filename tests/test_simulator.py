"""The simulator over real HTTP on loopback: deterministic, believable, and in the real
services' formats."""

import csv
import io
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import requests

from simulator import weather
from simulator.config import SimulatorConfig
from simulator.fleet import build_fleet
from simulator.modes import ModeWindow
from simulator.readings import COLUMNS, generate
from simulator.server import SimulatorServer

NOW = datetime(2026, 7, 16, 12, 0, tzinfo=UTC)  # a Thursday
SEED, FACILITIES, INTERVAL = 5, 8, 300


def clock():
    return NOW


def config(**overrides) -> SimulatorConfig:
    return SimulatorConfig(**{"seed": SEED, "facilities": FACILITIES, "interval_s": INTERVAL, "now": clock, **overrides})


@pytest.fixture(scope="module")
def sim():
    """A simulator nobody changes the modes of."""
    with SimulatorServer(config()) as server:
        yield server


def get(sim, path, **params):
    return requests.get(f"{sim.url}{path}", params=params, timeout=30)


def readings(sim, start: datetime, end: datetime, **params) -> pd.DataFrame:
    response = get(sim, "/v1/readings", start=start.isoformat(), end=end.isoformat(), **params)
    assert response.status_code == 200, response.text
    frame = pd.read_csv(io.StringIO(response.text), dtype={"meter_id": str, "facility_id": str})
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    return frame


def unix_s(ts: pd.Series) -> np.ndarray:
    return (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds().astype(np.int64).to_numpy()


def facility_kw(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby(["facility_id", "ts"])["active_power_kw"].sum()


def by_archetype(sim) -> dict[str, dict]:
    return {f["archetype"]: f for f in get(sim, "/v1/facilities").json()}


# --- determinism -------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_values(sim):
    params = {"start": "2026-07-14T00:00:00Z", "end": "2026-07-14T06:00:00Z"}
    first = get(sim, "/v1/readings", **params).content
    assert len(first) > 10_000
    assert get(sim, "/v1/readings", **params).content == first
    with SimulatorServer(config()) as twin:
        assert get(twin, "/v1/readings", **params).content == first
    with SimulatorServer(config(seed=SEED + 1)) as other:
        theirs = pd.read_csv(io.BytesIO(get(other, "/v1/readings", **params).content))
    ours = pd.read_csv(io.BytesIO(first))
    assert (theirs.energy_kwh.to_numpy() != ours.energy_kwh.to_numpy()).mean() > 0.5


def test_overlapping_windows_agree_on_the_overlap(sim):
    # 12 days of 34 meters at 5 minutes span several generation chunks.
    n_meters = len(get(sim, "/v1/meters").json())
    wide = readings(sim, datetime(2026, 7, 2, tzinfo=UTC), datetime(2026, 7, 14, tzinfo=UTC))
    assert len(wide) == 12 * 288 * n_meters > 100_000
    narrow = readings(sim, datetime(2026, 7, 8, 10, 35, tzinfo=UTC), datetime(2026, 7, 8, 12, 5, tzinfo=UTC))
    overlap = wide[(wide.ts >= narrow.ts.min()) & (wide.ts <= narrow.ts.max())].reset_index(drop=True)
    assert len(narrow) == 18 * n_meters
    pd.testing.assert_frame_equal(overlap, narrow)


def test_a_facility_filter_returns_the_same_rows_as_the_full_fleet(sim):
    start, end = datetime(2026, 7, 14, 9, tzinfo=UTC), datetime(2026, 7, 14, 10, tzinfo=UTC)
    everything = readings(sim, start, end)
    some = readings(sim, start, end, facility_id="FAC-0002,FAC-0005")
    assert set(some.facility_id) == {"FAC-0002", "FAC-0005"}
    expected = everything[everything.facility_id.isin(["FAC-0002", "FAC-0005"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(some, expected)


def test_in_process_generate_matches_the_api(sim):
    start, end = datetime(2026, 7, 14, 9, tzinfo=UTC), datetime(2026, 7, 14, 11, tzinfo=UTC)
    frame = generate(build_fleet(SEED, FACILITIES, INTERVAL), start, end, INTERVAL, now=NOW)
    pd.testing.assert_frame_equal(frame, readings(sim, start, end))


# --- format ------------------------------------------------------------------------


def test_csv_header_rows_and_values(sim):
    meters = get(sim, "/v1/meters").json()
    response = get(sim, "/v1/readings", start="2026-07-14T10:00:00Z", end="2026-07-14T11:00:00Z")
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers.get("transfer-encoding") == "chunked"  # streamed, not built whole
    rows = list(csv.reader(io.StringIO(response.text)))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) - 1 == len(meters) * 12
    assert rows[1][:4] == ["2026-07-14T10:00:00Z", meters[0]["meter_id"], meters[0]["facility_id"], "300"]
    assert all(re.fullmatch(r"\d+\.\d{6}", row[4]) for row in rows[1:])  # fixed precision
    assert [row[0] for row in rows[1 : 1 + len(meters)]] == ["2026-07-14T10:00:00Z"] * len(meters)
    frame = pd.read_csv(io.StringIO(response.text))
    assert (frame.energy_kwh >= 0).all() and frame.notna().all().all()
    assert frame.power_factor.between(0.5, 1).all() and frame.voltage_v.between(200, 400).all()
    assert frame.frequency_hz.between(49.8, 60.2).all()
    # Energy over the interval and its average power agree, to the power's 3 decimals.
    np.testing.assert_allclose(frame.energy_kwh, frame.active_power_kw * 300 / 3600, rtol=0, atol=0.0005 * 300 / 3600 + 1e-6)
    # Three-phase commercial supplies: P = 3 V I pf (homes are single-phase).
    three_phase = frame[frame.voltage_v > 250]
    np.testing.assert_allclose(3 * three_phase.voltage_v * three_phase.current_a * three_phase.power_factor / 1000,
                               three_phase.active_power_kw, rtol=0.01, atol=0.05)


def test_ndjson_carries_the_same_readings_as_csv(sim):
    params = {"start": "2026-07-14T10:00:00Z", "end": "2026-07-14T10:30:00Z"}
    from_csv = pd.read_csv(io.StringIO(get(sim, "/v1/readings", **params).text))
    response = get(sim, "/v1/readings", format="ndjson", **params)
    assert response.headers["content-type"].startswith("application/x-ndjson")
    from_ndjson = pd.read_json(io.StringIO(response.text), lines=True, dtype=False)
    pd.testing.assert_frame_equal(from_csv, from_ndjson[list(from_csv.columns)], check_dtype=False)


def test_registry_describes_a_varied_fleet_and_its_meters(sim):
    facilities = get(sim, "/v1/facilities").json()
    meters = get(sim, "/v1/meters").json()
    assert [f["facility_id"] for f in facilities] == [f"FAC-{i:04d}" for i in range(1, 9)]
    assert {f["archetype"] for f in facilities[:7]} == {"office", "retail", "warehouse", "data_centre", "hospital", "crypto_mining", "home_pv_battery"}
    assert len({f["archetype"] for f in facilities[:5]}) == 5
    assert len({f["timezone"] for f in facilities}) >= 6
    for facility in facilities:
        assert set(facility) == {"facility_id", "name", "archetype", "timezone", "latitude", "longitude", "contract_demand_kw", "price_zone", "grid_zone"}
        assert facility["contract_demand_kw"] > 0 and -90 <= facility["latitude"] <= 90
    assert {m["facility_id"] for m in meters} == {f["facility_id"] for f in facilities}
    assert all(re.fullmatch(r"MTR-\d{4}-\d{2}", m["meter_id"]) and m["interval_s"] == 300 for m in meters)
    assert {m["energy_source"] for m in meters} <= {"grid", "solar", "wind", "natural_gas", "coal", "nuclear", "hydro", "battery"}
    # No total meter beside the submeters: nothing is counted twice.
    assert not [m for m in meters if m["energy_source"] == "grid" and m["end_use"] == "main"]
    home = [m for m in meters if m["facility_id"] == by_archetype(sim)["home_pv_battery"]["facility_id"]]
    assert {m["energy_source"] for m in home} == {"grid", "solar", "battery"}


# --- believable load ---------------------------------------------------------------


def test_load_shapes_are_believable(sim):
    facilities = by_archetype(sim)
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
    weekend = office[office.local.dt.day_of_week >= 5]
    assert weekend[weekend.local.dt.hour.between(10, 15)].active_power_kw.mean() < 0.5 * day

    centre = local("data_centre").active_power_kw
    assert centre.std() / centre.mean() < 0.15  # flat: IT load, cooling follows the weather

    home = facilities["home_pv_battery"]
    own = week[week.facility_id == home["facility_id"]].copy()
    own["hour"] = own.ts.dt.tz_convert(home["timezone"]).dt.hour
    solar = own[own.energy_source == "solar"]
    assert solar[solar.hour.isin([0, 1, 2, 3, 23])].active_power_kw.max() == 0
    assert (solar[solar.hour.between(11, 14)].groupby(solar.ts.dt.date).active_power_kw.mean() > 0.3).all()
    battery = own[own.energy_source == "battery"]
    assert battery[battery.hour.between(18, 20)].active_power_kw.mean() > 0.5
    assert battery[battery.hour.between(9, 15)].active_power_kw.max() == 0


def test_pv_follows_the_irradiance_the_weather_api_reports(sim):
    home = by_archetype(sim)["home_pv_battery"]
    body = get(sim, "/v1/archive", latitude=home["latitude"], longitude=home["longitude"],
               start_date="2026-07-06", end_date="2026-07-12", hourly="shortwave_radiation").json()
    sun = pd.Series(body["hourly"]["shortwave_radiation"], index=pd.to_datetime(body["hourly"]["time"], utc=True))
    frame = readings(sim, datetime(2026, 7, 6, tzinfo=UTC), datetime(2026, 7, 13, tzinfo=UTC), facility_id=home["facility_id"])
    solar = frame[(frame.energy_source == "solar") & (frame.ts.dt.minute == 0)].set_index("ts").active_power_kw
    assert (solar[sun[solar.index].to_numpy() == 0] == 0).all()  # no sun, no PV
    assert (solar[sun[solar.index].to_numpy() > 300] > 0).all()


def test_cooling_load_follows_the_temperature_the_weather_api_reports(sim):
    centre = by_archetype(sim)["data_centre"]
    body = get(sim, "/v1/archive", latitude=centre["latitude"], longitude=centre["longitude"],
               start_date="2026-07-06", end_date="2026-07-12", hourly="temperature_2m").json()
    temperature = pd.Series(body["hourly"]["temperature_2m"], index=pd.to_datetime(body["hourly"]["time"], utc=True))
    meters = [m["meter_id"] for m in get(sim, "/v1/meters").json() if m["facility_id"] == centre["facility_id"] and m["end_use"] == "hvac"]
    frame = readings(sim, datetime(2026, 7, 6, tzinfo=UTC), datetime(2026, 7, 13, tzinfo=UTC), facility_id=centre["facility_id"])
    hvac = frame[frame.meter_id.isin(meters) & (frame.ts.dt.minute == 0)].set_index("ts").active_power_kw
    cooling_degrees = np.maximum(temperature[hvac.index].to_numpy() - 18.0, 0.0)
    assert cooling_degrees.std() > 1.0  # the week has hot and cool hours to compare
    assert np.corrcoef(hvac.to_numpy(), cooling_degrees)[0, 1] > 0.9


def test_peak_scales_a_solar_homes_whole_load_so_pv_is_not_counted_on_top():
    """Meters add up to the load: with PV and battery as shares of the load (not extra
    energy), peak mode scales the sum of all the home's meters by the peak factor."""
    fleet = build_fleet(SEED, FACILITIES, INTERVAL)
    homes = [f.facility_id for f in fleet.facilities if f.archetype in ("home_pv_battery", "retail")]
    start, end = datetime(2026, 7, 14, tzinfo=UTC), datetime(2026, 7, 15, tzinfo=UTC)
    normal = generate(fleet, start, end, INTERVAL, now=NOW, facility_ids=homes)
    peak = generate(fleet, start, end, INTERVAL, now=NOW, facility_ids=homes,
                    modes=[ModeWindow(h, "peak", start, end) for h in homes])
    assert normal.groupby("energy_source").energy_kwh.sum()["solar"] > 0
    ratio = peak.groupby("facility_id").energy_kwh.sum() / normal.groupby("facility_id").energy_kwh.sum()
    np.testing.assert_allclose(ratio, 1.35, rtol=0.01)
    grid = lambda frame: frame[frame.energy_source == "grid"].energy_kwh.sum()  # noqa: E731
    assert grid(peak) > 1.35 * grid(normal)  # PV cannot grow with the load: the grid takes the rest


# --- the clock and the modes -------------------------------------------------------


def test_no_reading_from_the_future(sim):
    frame = readings(sim, NOW - timedelta(hours=1), NOW + timedelta(hours=5))
    assert frame.ts.max() + timedelta(seconds=INTERVAL) <= NOW
    assert frame.ts.min() == NOW - timedelta(hours=1)
    assert get(sim, "/v1/readings", start=(NOW + timedelta(hours=1)).isoformat(), end=(NOW + timedelta(hours=2)).isoformat()).text.count("\n") == 1


def test_modes_outage_removes_rows_peak_raises_load_and_the_last_set_wins():
    window = {"start": "2026-07-15T08:00:00Z", "end": "2026-07-15T09:00:00Z"}
    around = (datetime(2026, 7, 15, 7, tzinfo=UTC), datetime(2026, 7, 15, 10, tzinfo=UTC))
    in_window = lambda frame: frame[(frame.ts >= "2026-07-15T08:00:00Z") & (frame.ts < "2026-07-15T09:00:00Z")]  # noqa: E731
    with SimulatorServer(config()) as sim:
        before = facility_kw(in_window(readings(sim, *around)))
        post = lambda **body: requests.post(f"{sim.url}/v1/sim/modes", json=body, timeout=5)  # noqa: E731
        assert post(facility_id="FAC-0001", mode="outage", **window).status_code == 201
        assert post(facility_id="FAC-0002", mode="peak", **window).status_code == 201
        assert post(facility_id="FAC-0003", mode="peak", **window).status_code == 201
        assert post(facility_id="FAC-0003", mode="normal", start="2026-07-15T08:30:00Z", end="2026-07-15T09:00:00Z").status_code == 201
        listed = get(sim, "/v1/sim/modes").json()
        assert [(m["facility_id"], m["mode"]) for m in listed] == [("FAC-0001", "outage"), ("FAC-0002", "peak"), ("FAC-0003", "peak"), ("FAC-0003", "normal")]
        assert listed[0]["start"] == "2026-07-15T08:00:00Z"
        after = readings(sim, *around)

        outage = after[after.facility_id == "FAC-0001"]
        assert in_window(outage).empty
        assert (outage.ts < "2026-07-15T08:00:00Z").any() and (outage.ts >= "2026-07-15T09:00:00Z").any()
        peak = facility_kw(in_window(after))
        assert peak["FAC-0002"].sum() == pytest.approx(1.35 * before["FAC-0002"].sum(), rel=0.01)
        home_before, home_after = before["FAC-0003"], peak["FAC-0003"]
        first_half = home_after.index < pd.Timestamp("2026-07-15T08:30:00Z")
        assert home_after[first_half].sum() == pytest.approx(1.35 * home_before[first_half].sum(), rel=0.02)
        assert home_after[~first_half].sum() == pytest.approx(home_before[~first_half].sum(), rel=1e-9)
        before = readings(sim, *around).query("facility_id == 'FAC-0004'")
        assert facility_kw(after.query("facility_id == 'FAC-0004'")).sum() == pytest.approx(facility_kw(before).sum())

        unknown = post(facility_id="FAC-9999", mode="outage", **window)
        assert unknown.status_code == 400 and "FAC-9999" in unknown.json()["detail"]
        assert post(facility_id="FAC-0001", mode="party", **window).status_code == 400
        assert post(facility_id="FAC-0001", mode="peak", start=window["end"], end=window["start"]).status_code == 400
        assert requests.post(f"{sim.url}/v1/sim/modes", data="not json", timeout=5).status_code == 400


def test_modes_can_be_set_through_the_config():
    outage = ModeWindow("FAC-0002", "outage", datetime(2026, 7, 15, 8, tzinfo=UTC), datetime(2026, 7, 15, 9, tzinfo=UTC))
    with SimulatorServer(config(modes=(outage,))) as sim:
        assert get(sim, "/v1/sim/modes").json()[0]["mode"] == "outage"
        frame = readings(sim, datetime(2026, 7, 15, 8, tzinfo=UTC), datetime(2026, 7, 15, 9, tzinfo=UTC))
    assert "FAC-0002" not in set(frame.facility_id) and "FAC-0001" in set(frame.facility_id)


# --- bad rows ----------------------------------------------------------------------


def test_bad_rows_come_in_every_kind_only_when_asked():
    params = {"start": "2026-07-14T00:00:00Z", "end": "2026-07-14T06:00:00Z"}
    with SimulatorServer(SimulatorConfig(seed=3, facilities=10, interval_s=60, bad_row_rate=0.05, now=clock)) as server:
        frame = pd.read_csv(io.StringIO(get(server, "/v1/readings", **params).text))
    known = {m.meter_id for m in build_fleet(3, 10).meters}
    ts = pd.to_datetime(frame.ts, utc=True)
    kinds = {
        "negative": (frame.energy_kwh < 0).sum(),
        "nan": frame.energy_kwh.isna().sum(),
        "pf_above_one": (frame.power_factor > 1).sum(),
        "zero_voltage": (frame.voltage_v == 0).sum(),
        "future": (ts > NOW).sum(),
        "duplicate": frame.duplicated().sum(),
        "unknown_meter": (~frame.meter_id.isin(known)).sum(),
    }
    expected_each = 0.05 * len(frame) / len(kinds)
    assert all(0.6 * expected_each < count < 1.4 * expected_each for count in kinds.values()), (kinds, expected_each)

    with SimulatorServer(SimulatorConfig(seed=3, facilities=10, interval_s=60, now=clock)) as clean:
        frame = pd.read_csv(io.StringIO(get(clean, "/v1/readings", **params).text))
    ts = pd.to_datetime(frame.ts, utc=True)
    assert (frame.energy_kwh >= 0).all() and frame.notna().all().all() and (frame.power_factor <= 1).all()
    assert (frame.voltage_v > 0).all() and (ts < NOW).all() and not frame.duplicated(["meter_id", "ts"]).any()
    assert frame.meter_id.isin(known).all()


# --- the other feeds ---------------------------------------------------------------


def test_open_meteo_format_and_the_temperature_that_drives_the_meters(sim):
    office = by_archetype(sim)["office"]
    body = get(sim, "/v1/archive", latitude=office["latitude"], longitude=office["longitude"],
               start_date="2026-07-10", end_date="2026-07-11",
               hourly="temperature_2m,relative_humidity_2m,cloud_cover,shortwave_radiation,wind_speed_10m").json()
    assert {"latitude", "longitude", "generationtime_ms", "utc_offset_seconds", "timezone", "timezone_abbreviation", "elevation"} <= set(body)
    assert body["timezone"] == "GMT" and body["utc_offset_seconds"] == 0
    assert body["hourly_units"] == {"time": "iso8601", "temperature_2m": "°C", "relative_humidity_2m": "%", "cloud_cover": "%",
                                    "shortwave_radiation": "W/m²", "wind_speed_10m": "km/h"}
    assert body["hourly"]["time"][:2] == ["2026-07-10T00:00", "2026-07-10T01:00"]
    assert all(len(values) == 48 for values in body["hourly"].values())
    assert all(0 <= v <= 100 for v in body["hourly"]["cloud_cover"] + body["hourly"]["relative_humidity_2m"])
    city = weather.nearest_city(office["latitude"], office["longitude"])
    t = int(datetime(2026, 7, 10, tzinfo=UTC).timestamp()) + 3600 * np.arange(48)
    np.testing.assert_allclose(body["hourly"]["temperature_2m"], weather.temperature_c(SEED, city, t), atol=0.051)

    local = get(sim, "/v1/forecast", latitude=office["latitude"], longitude=office["longitude"],
                hourly="temperature_2m", forecast_days=2, past_days=1, timezone="auto").json()
    assert local["timezone"] == office["timezone"] and local["utc_offset_seconds"] != 0
    assert len(local["hourly"]["time"]) == 72 and local["hourly"]["time"][0].endswith("T00:00")
    # The forecast's past hours are the archive's: the truth.
    archive = get(sim, "/v1/archive", latitude=office["latitude"], longitude=office["longitude"], timezone="auto",
                  start_date=local["hourly"]["time"][0][:10], end_date=local["hourly"]["time"][0][:10], hourly="temperature_2m").json()
    assert local["hourly"]["temperature_2m"][:24] == archive["hourly"]["temperature_2m"]

    # A point that is no facility's city gets the nearest city's weather.
    near = get(sim, "/v1/archive", latitude=41.5, longitude=-88.0, start_date="2026-07-10", end_date="2026-07-10", hourly="temperature_2m").json()
    chicago = weather.nearest_city(41.88, -87.63)
    np.testing.assert_allclose(near["hourly"]["temperature_2m"], weather.temperature_c(SEED, chicago, t[:24]), atol=0.051)

    bad = get(sim, "/v1/forecast", latitude=41.9, longitude=-87.6, hourly="temperature_2m,snow_depth_metres")
    assert bad.status_code == 400 and bad.json()["error"] is True and "snow_depth_metres" in bad.json()["reason"]
    future = get(sim, "/v1/archive", latitude=41.9, longitude=-87.6, start_date="2026-07-16", end_date="2026-07-20", hourly="temperature_2m")
    assert future.status_code == 400 and future.json()["error"] is True
    assert get(sim, "/v1/forecast", latitude=95, longitude=0, hourly="temperature_2m").status_code == 400
    assert get(sim, "/v1/forecast", latitude=41.9, longitude=-87.6, hourly="temperature_2m", timezone="Mars/Olympus").status_code == 400


def test_comed_five_minute_feed_format(sim):
    feed = get(sim, "/api", type="5minutefeed").json()
    assert len(feed) == 288
    assert all(set(p) == {"millisUTC", "price"} and isinstance(p["millisUTC"], str) and isinstance(p["price"], str) for p in feed)
    millis = [int(p["millisUTC"]) for p in feed]
    assert millis[0] == int(NOW.timestamp()) * 1000  # newest first, nothing after now
    assert all(b - a == -300_000 for a, b in zip(millis, millis[1:], strict=False))
    cents = [float(p["price"]) for p in feed]
    assert 0 < np.median(cents) < 15
    ranged = get(sim, "/api", type="5minutefeed", datestart="202607150700", dateend="202607150800").json()
    assert len(ranged) == 13  # inclusive of both ends
    assert ranged[-1]["millisUTC"] == str(int(datetime(2026, 7, 15, 12, tzinfo=UTC).timestamp()) * 1000)  # 07:00 Chicago (CDT)
    hour = get(sim, "/api", type="currenthouraverage").json()
    assert len(hour) == 1 and set(hour[0]) == {"millisUTC", "price"}
    assert get(sim, "/api", type="5minutefeed", zone="NOPE").status_code == 400
    assert get(sim, "/api", type="5minutefeed", datestart="2026-07-15", dateend="202607150800").status_code == 400

    day_ahead = get(sim, "/v1/prices/day-ahead", zone="COMED", date="2026-07-16").json()
    assert day_ahead["zone"] == "COMED" and day_ahead["currency"] == "USD" and day_ahead["unit"] == "USD/MWh"
    assert len(day_ahead["prices"]) == 24
    assert day_ahead["prices"][0] == {**day_ahead["prices"][0], "start": "2026-07-16T00:00:00Z", "end": "2026-07-16T01:00:00Z"}
    assert all(isinstance(p["price"], float) for p in day_ahead["prices"])
    assert get(sim, "/v1/prices/day-ahead", zone="COMED", date="16/07/2026").status_code == 400


def test_electricity_maps_format(sim):
    headers = {"auth-token": "anything"}
    latest = requests.get(f"{sim.url}/v3/carbon-intensity/latest", params={"zone": "DE"}, headers=headers, timeout=10).json()
    assert set(latest) == {"zone", "carbonIntensity", "datetime", "updatedAt", "createdAt", "emissionFactorType", "isEstimated", "estimationMethod"}
    assert latest["datetime"] == "2026-07-16T12:00:00.000Z" and latest["emissionFactorType"] == "lifecycle"
    assert isinstance(latest["carbonIntensity"], int) and latest["isEstimated"] is True
    history = get(sim, "/v3/carbon-intensity/history", zone="DE").json()
    assert history["zone"] == "DE" and len(history["history"]) == 24 and history["history"][-1]["datetime"] == latest["datetime"]
    direct = get(sim, "/v3/carbon-intensity/history", zone="DE", emissionFactorType="direct").json()["history"]
    assert all(d["carbonIntensity"] < h["carbonIntensity"] for d, h in zip(direct, history["history"], strict=True))
    past = get(sim, "/v3/carbon-intensity/past-range", zone="GB", start="2026-07-14T00:00:00Z", end="2026-07-15T00:00:00Z").json()
    assert past["zone"] == "GB" and len(past["data"]) == 24 and past["data"][0]["datetime"] == "2026-07-14T00:00:00.000Z"

    def mean(zone):
        data = get(sim, "/v3/carbon-intensity/past-range", zone=zone, start="2026-07-06T00:00:00Z", end="2026-07-13T00:00:00Z").json()["data"]
        return np.mean([p["carbonIntensity"] for p in data])

    assert mean("GB") < mean("DE") < mean("US-MIDA-PJM") + 100 and 250 < mean("DE") < 450 and 120 < mean("GB") < 300
    assert get(sim, "/v3/carbon-intensity/latest", zone="XX").status_code == 400
    assert get(sim, "/v3/carbon-intensity/past-range", zone="DE", start="2026-07-01T00:00:00Z", end="2026-07-15T00:00:00Z").status_code == 400


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ({"start": "2026-07-14T10:00:00Z", "end": "2026-07-14T09:00:00Z"}, "must be after start"),
        ({"start": "yesterday", "end": "2026-07-14T09:00:00Z"}, "not an ISO 8601"),
        ({"start": "2026-05-01T00:00:00Z", "end": "2026-07-01T00:00:00Z"}, "at most 31 days"),
        ({"start": "2026-07-14T09:00:00Z", "end": "2026-07-14T10:00:00Z", "facility_id": "FAC-0404"}, "unknown facility_id"),
        ({"start": "2026-07-14T09:00:00Z", "end": "2026-07-14T10:00:00Z", "format": "xml"}, "format must be"),
        ({"end": "2026-07-14T10:00:00Z"}, "'start' is required"),
    ],
)
def test_readings_reject_bad_parameters_with_the_reason(sim, params, complaint):
    response = get(sim, "/v1/readings", **params)
    assert response.status_code == 400
    assert complaint in response.json()["detail"]


def test_python_dash_m_simulator_serves_in_the_foreground():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "simulator", "--port", str(port), "--facilities", "3", "--seed", "7", "--interval-s", "60"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                facilities = requests.get(f"http://127.0.0.1:{port}/v1/facilities", timeout=2).json()
                break
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, "python -m simulator did not start"
                time.sleep(0.1)
        assert [f["facility_id"] for f in facilities] == ["FAC-0001", "FAC-0002", "FAC-0003"]
        assert requests.get(f"http://127.0.0.1:{port}/v1/meters", timeout=2).json()[0]["interval_s"] == 60
    finally:
        process.terminate()
        process.wait(timeout=10)
