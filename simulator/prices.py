"""Grid prices per price zone, in the zone's own currency (CURRENCIES): 5-minute
real-time prices in hundredths of it per kWh (ComEd's feed: ¢/kWh) and hourly day-ahead
prices per MWh. Driven by the zone city's clock, temperature and
wind, with occasional spikes, and negative prices on windy nights, as real-time
markets have."""

import numpy as np

from simulator import weather
from simulator.fleet import CITIES
from simulator.noise import normal, stable_id, uniform

FIVE_MINUTES = 300
ZONES = {city.price_zone: i for i, city in enumerate(CITIES)}
# The currency each zone's market settles in, as the real feeds state it (ComEd USD,
# Elexon GBP, ENTSO-E EUR, AEMO AUD, IESO CAD); BASE_CENTS are hundredths of it.
CURRENCIES = {"COMED": "USD", "NYISO-NYC": "USD", "APS": "USD", "CAISO-SF": "USD", "IESO": "CAD", "GB": "GBP", "DE-LU": "EUR", "NSW1": "AUD"}
BASE_CENTS = {"COMED": 3.0, "NYISO-NYC": 4.5, "APS": 3.5, "CAISO-SF": 4.0, "IESO": 2.5, "GB": 8.0, "DE-LU": 7.5, "NSW1": 6.0}


def expected_cents(seed: int, zone: str, t_s: np.ndarray) -> np.ndarray:
    """The price the market expects: base, daily shape and weather-driven demand."""
    city_index = ZONES[zone]
    city = CITIES[city_index]
    t_s = np.asarray(t_s, dtype=np.float64)
    local_hour = ((t_s % 86400) / 3600.0 + city.longitude / 15.0) % 24.0
    evening_peak = 2.2 * np.exp(-(((local_hour - 18.0) / 2.5) ** 2))
    morning = 0.8 * np.exp(-(((local_hour - 8.0) / 1.5) ** 2))
    night_dip = -1.2 * np.exp(-(((local_hour - 3.0) / 2.5) ** 2))
    temperature = weather.temperature_c(seed, city_index, t_s)
    demand = 0.09 * np.abs(temperature - 18.0)
    # Wind output beyond what the night's demand absorbs pushes prices below zero.
    wind = weather.wind_speed_kmh(seed, city_index, t_s)
    wind_glut = -0.35 * np.clip(wind - 15.0, 0.0, None) * (0.3 + np.exp(-(((local_hour - 3.0) / 3.0) ** 2)))
    return BASE_CENTS[zone] + evening_peak + morning + night_dip + demand + wind_glut


def five_minute_cents(seed: int, zone: str, t_s: np.ndarray) -> np.ndarray:
    """Real-time 5-minute price, hundredths of the zone's currency per kWh (¢/kWh), for the
    5-minute interval ending at t_s."""
    t_s = np.asarray(t_s, dtype=np.int64)
    key = stable_id(zone)
    noise = 0.45 * normal(seed, 40, key, t_s)
    spike = np.where(uniform(seed, 41, key, t_s // 1800) < 0.01, 6.0 + 20.0 * uniform(seed, 42, key, t_s), 0.0)
    return np.round(expected_cents(seed, zone, t_s) + noise + spike, 1)


def day_ahead_per_mwh(seed: int, zone: str, hour_starts_s: np.ndarray) -> np.ndarray:
    """Day-ahead hourly price, the zone's currency per MWh (1 ¢/kWh = 10 per MWh)."""
    mid = np.asarray(hour_starts_s, dtype=np.float64) + 1800
    key = stable_id(zone)
    return np.round(10.0 * (expected_cents(seed, zone, mid) + 0.3 * normal(seed, 43, key, hour_starts_s)), 2)
