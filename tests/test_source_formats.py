"""The feed parsers on samples in the real formats, written from the public docs."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from resources.carbon_api import parse_electricity_maps
from resources.price_api import hourly_averages, parse_comed_five_minute, parse_generic_prices
from resources.weather_api import parse_open_meteo

SAMPLES = Path(__file__).parent / "samples"


def sample(name):
    text = (SAMPLES / name).read_text()
    return json.loads(text) if name.endswith(".json") else text


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_open_meteo_local_times_follow_the_zone_across_a_dst_change():
    parsed = parse_open_meteo(sample("open_meteo_forecast_berlin_dst.json"))
    # 01:00 CET is 00:00 UTC; the clocks jump, so 03:00 CEST is 01:00 UTC, not 02:00.
    assert [row["time"] for row in parsed.rows] == [utc(2026, 3, 28, 23), utc(2026, 3, 29, 0), utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)]
    assert [row["temperature_c"] for row in parsed.rows] == [5.1, 4.8, None, 4.2]  # null stays null
    assert parsed.rows[0]["relative_humidity_pct"] == 81 and parsed.rows[0]["wind_speed_kmh"] == 11.2
    assert all("precipitation" not in row for row in parsed.rows)  # unknown variables ignored
    assert parsed.rejected == []


def test_open_meteo_unixtime_and_imperial_units_are_normalised():
    parsed = parse_open_meteo(sample("open_meteo_archive_unixtime_fahrenheit.json"))
    assert parsed.rows == [
        {"time": utc(2026, 1, 1, 0), "temperature_c": 0.0, "wind_speed_kmh": 16.093, "shortwave_radiation_w_m2": 0.0, "cloud_cover_pct": 100.0},
        {"time": utc(2026, 1, 1, 1), "temperature_c": 10.0, "wind_speed_kmh": 0.0, "shortwave_radiation_w_m2": 120.5, "cloud_cover_pct": 37.0},
    ]


def test_open_meteo_shape_errors_are_named():
    with pytest.raises(ValueError, match="no hourly.time"):
        parse_open_meteo({"latitude": 1.0})
    payload = sample("open_meteo_forecast_berlin_dst.json")
    payload["hourly"]["temperature_2m"].pop()
    with pytest.raises(ValueError, match="temperature_2m has 3 values for 4 times"):
        parse_open_meteo(payload)
    payload = sample("open_meteo_forecast_berlin_dst.json")
    payload["hourly_units"]["temperature_2m"] = "K"
    parsed = parse_open_meteo(payload)
    assert parsed.rejected == [{"raw": {"variable": "temperature_2m", "unit": "K"}, "reason": "unsupported unit 'K' for temperature_2m"}]
    assert all("temperature_c" not in row for row in parsed.rows)


def test_comed_feed_newest_first_in_cents_becomes_oldest_first_per_mwh():
    parsed = parse_comed_five_minute(sample("comed_5minutefeed.json"))
    assert [(row["interval_end"], row["price_per_mwh"]) for row in parsed.rows] == [
        (utc(2015, 6, 18, 14, 30), 31.0),
        (utc(2015, 6, 18, 14, 35), -4.0),  # negative real-time prices happen
        (utc(2015, 6, 18, 14, 40), 29.0),
    ]
    assert parsed.rows[0]["interval_start"] == utc(2015, 6, 18, 14, 25)
    # The format names no currency: none is assumed (the warehouse takes the zone's)
    # unless the source implies one for every zone, as ComEd's own API does (USD).
    assert parsed.rows[0]["currency"] is None and parsed.rows[0]["zone"] == "COMED"
    assert [r["reason"] for r in parsed.rejected] == ["needs millisUTC (epoch milliseconds) and price (¢/kWh)"]
    assert hourly_averages(parsed.rows) == [
        {"zone": "COMED", "hour_start": utc(2015, 6, 18, 14), "currency": None, "price_per_mwh": 18.6667, "intervals": 3}
    ]
    comed = parse_comed_five_minute(sample("comed_5minutefeed.json"), currency="USD")
    assert {row["currency"] for row in comed.rows} == {"USD"}


def test_generic_prices_in_any_stated_unit_become_per_mwh():
    parsed = parse_generic_prices(sample("generic_prices.csv"))
    assert [(row["interval_start"], row["price_per_mwh"]) for row in parsed.rows] == [
        (utc(2026, 11, 21, 0), 41.2), (utc(2026, 11, 21, 1), 38.5)]
    assert "unknown price unit 'BTC/MWh'" in parsed.rejected[0]["reason"]
    as_json = parse_generic_prices({"zone": "DE-LU", "unit": "EUR/MWh", "prices": [
        {"start": "2026-11-21T00:00:00Z", "end": "2026-11-21T01:00:00Z", "price": 95.1},
        {"start": "2026-11-21T02:00:00Z", "end": "2026-11-21T01:00:00Z", "price": 90.0}]})
    assert as_json.rows[0] == {"zone": "DE-LU", "interval_start": utc(2026, 11, 21, 0), "interval_end": utc(2026, 11, 21, 1),
                            "price_per_mwh": 95.1, "currency": "EUR", "source": "day_ahead"}
    assert as_json.rejected[0]["reason"] == "end is not after start"


def test_price_currency_is_the_one_stated_never_a_default():
    hour = {"start": "2026-11-21T00:00:00Z", "end": "2026-11-21T01:00:00Z"}
    gb = parse_generic_prices({"zone": "GB", "currency": "GBP", "unit": "GBP/MWh", "prices": [{**hour, "price": 80.0}]})
    nsw = parse_generic_prices({"zone": "NSW1", "unit": "AUD/MWh", "prices": [{**hour, "price": 120.0}]})
    pence = parse_generic_prices({"zone": "GB", "unit": "p/kWh", "prices": [{**hour, "price": 8.0}]})
    cents = parse_generic_prices({"zone": "DE-LU", "unit": "¢/kWh", "prices": [{**hour, "price": 7.5}]})
    assert [(p.rows[0]["currency"], p.rows[0]["price_per_mwh"]) for p in (gb, nsw, pence, cents)] == [
        ("GBP", 80.0), ("AUD", 120.0), ("GBP", 80.0), (None, 75.0)]
    stated = parse_generic_prices({"zone": "DE-LU", "currency": "EUR", "unit": "¢/kWh", "prices": [{**hour, "price": 7.5}]})
    assert stated.rows[0]["currency"] == "EUR"
    contradicted = parse_generic_prices({"zone": "GB", "currency": "USD", "unit": "GBP/MWh", "prices": [{**hour, "price": 80.0}]})
    assert not contradicted.rows and contradicted.rejected[0]["reason"] == "currency USD contradicts the unit GBP/MWh"
    unknown = parse_generic_prices({"zone": "GB", "currency": "XBT", "unit": "¢/kWh", "prices": [{**hour, "price": 8.0}]})
    assert not unknown.rows and unknown.rejected[0]["reason"].startswith("unknown currency 'XBT'")


def test_electricity_maps_latest_point_and_history():
    latest = parse_electricity_maps(sample("electricity_maps_latest.json"))
    assert latest.rows == [{"zone": "DE", "hour_start": utc(2019, 5, 21), "carbon_intensity_g_per_kwh": 302.0,
                            "factor_type": "lifecycle", "is_estimated": True, "estimation_method": "TIME_SLICER_AVERAGE"}]
    history = parse_electricity_maps(sample("electricity_maps_history.json"))
    assert [(r["hour_start"], r["carbon_intensity_g_per_kwh"], r["factor_type"]) for r in history.rows] == [
        (utc(2026, 11, 21, 10), 212.0, "direct"), (utc(2026, 11, 21, 12), 198.0, "direct")]
    assert [r["reason"] for r in history.rejected] == ["carbonIntensity is null"]
    with pytest.raises(ValueError, match="no carbonIntensity, history or data"):
        parse_electricity_maps({"zone": "DE"})


def test_parsers_read_what_the_simulator_serves():
    """The simulator is the offline stand-in for these feeds: the parsers must read it."""
    import requests

    from simulator.config import SimulatorConfig
    from simulator.server import SimulatorServer

    now = utc(2026, 7, 16, 12)
    with SimulatorServer(SimulatorConfig(facilities=2, now=lambda: now)) as sim:
        weather = parse_open_meteo(requests.get(f"{sim.url}/v1/archive", params={
            "latitude": 41.9, "longitude": -87.6, "start_date": "2026-07-14", "end_date": "2026-07-14",
            "hourly": "temperature_2m,cloud_cover,shortwave_radiation,wind_speed_10m,relative_humidity_2m", "timezone": "auto"}, timeout=10).json())
        prices = parse_comed_five_minute(requests.get(f"{sim.url}/api", params={"type": "5minutefeed"}, timeout=10).json())
        carbon = parse_electricity_maps(requests.get(f"{sim.url}/v3/carbon-intensity/history", params={"zone": "DE"}, timeout=10).json())
    assert len(weather.rows) == 24 and weather.rows[0]["time"] == utc(2026, 7, 14, 5)  # local midnight in Chicago (CDT)
    assert len(prices.rows) == 288 and prices.rows[-1]["interval_end"] == now
    assert len(carbon.rows) == 24 and not (weather.rejected or prices.rejected or carbon.rejected)
