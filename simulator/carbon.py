"""Grid carbon intensity per Electricity Maps zone, gCO2eq/kWh, hourly.

Each zone has a typical mix; solar output lowers intensity at midday, evening peaks
raise it. Direct (operational) factors are lower than lifecycle ones."""

import numpy as np

from simulator import weather
from simulator.fleet import CITIES
from simulator.noise import normal, stable_id

ZONES = {city.grid_zone: i for i, city in enumerate(CITIES)}
LIFECYCLE_BASE = {"US-MIDA-PJM": 390, "US-NY-NYIS": 260, "US-SW-AZPS": 400, "US-CAL-CISO": 230, "CA-ON": 60, "GB": 210, "DE": 360, "AU-NSW": 640}
SOLAR_SHARE = {"US-MIDA-PJM": 0.08, "US-NY-NYIS": 0.06, "US-SW-AZPS": 0.25, "US-CAL-CISO": 0.45, "CA-ON": 0.02, "GB": 0.12, "DE": 0.3, "AU-NSW": 0.3}
DIRECT_RATIO = 0.82  # share of lifecycle emissions that are emitted at the stack


def intensity(seed: int, zone: str, hour_starts_s: np.ndarray, factor_type: str = "lifecycle") -> np.ndarray:
    """Carbon intensity of consumed electricity, integer gCO2eq/kWh, for each hour."""
    city_index = ZONES[zone]
    city = CITIES[city_index]
    t_s = np.asarray(hour_starts_s, dtype=np.float64) + 1800
    daylight = weather.shortwave_radiation_w_m2(seed, city_index, t_s) / 1000.0
    local_hour = ((t_s % 86400) / 3600.0 + city.longitude / 15.0) % 24.0
    evening = 0.08 * np.exp(-(((local_hour - 19.0) / 3.0) ** 2))
    noise = 0.04 * normal(seed, 50, stable_id(zone), np.asarray(hour_starts_s, dtype=np.int64))
    value = LIFECYCLE_BASE[zone] * (1.0 - SOLAR_SHARE[zone] * daylight + evening + noise)
    if factor_type == "direct":
        value = value * DIRECT_RATIO
    return np.round(np.clip(value, 5.0, None)).astype(np.int64)
