"""Simulated weather per city: the truth that drives the meters, and what the weather
API reports. Seasonal and diurnal cycles plus multi-day fronts; irradiance from the
sun's elevation and the cloud cover."""

import numpy as np

from simulator.fleet import CITIES, City
from simulator.noise import smooth

DAY_S = 86400.0


def _day_of_year(t_s: np.ndarray) -> np.ndarray:
    return (np.asarray(t_s, dtype=np.float64) / DAY_S) % 365.2425


def _solar_hour(city: City, t_s: np.ndarray) -> np.ndarray:
    """Local mean solar time in hours (noon = sun highest)."""
    return ((np.asarray(t_s, dtype=np.float64) % DAY_S) / 3600.0 + city.longitude / 15.0) % 24.0


def temperature_c(seed: int, city_index: int, t_s) -> np.ndarray:
    """Air temperature at 2 m, °C."""
    city = CITIES[city_index]
    t_s = np.asarray(t_s, dtype=np.float64)
    # Day 0 is 1 January (the epoch); peaks late July north, late January south.
    peak_day = 20.0 if city.southern else 202.0
    seasonal = city.seasonal_c * np.cos(2 * np.pi * (_day_of_year(t_s) - peak_day) / 365.2425)
    diurnal = city.diurnal_c * np.cos(2 * np.pi * (_solar_hour(city, t_s) - 15.0) / 24.0)
    fronts = 3.0 * smooth(t_s, seed, 10, city_index)
    return city.mean_c + seasonal + diurnal + fronts


def cloud_cover_pct(seed: int, city_index: int, t_s) -> np.ndarray:
    """Total cloud cover, %."""
    signal = smooth(t_s, seed, 11, city_index, periods_days=(0.6, 1.3, 2.2, 3.7))
    return np.clip(50.0 + 35.0 * signal, 0.0, 100.0)


def solar_elevation_sin(city: City, t_s) -> np.ndarray:
    """Sine of the sun's elevation (negative at night)."""
    t_s = np.asarray(t_s, dtype=np.float64)
    declination = np.radians(23.44) * np.sin(2 * np.pi * (284 + _day_of_year(t_s)) / 365.2425)
    hour_angle = np.radians(15.0 * (_solar_hour(city, t_s) - 12.0))
    lat = np.radians(city.latitude)
    return np.sin(lat) * np.sin(declination) + np.cos(lat) * np.cos(declination) * np.cos(hour_angle)


def shortwave_radiation_w_m2(seed: int, city_index: int, t_s) -> np.ndarray:
    """Global horizontal irradiance, W/m² (clear sky scaled by cloud cover, Kasten–Czeplak)."""
    city = CITIES[city_index]
    clear = 1000.0 * np.clip(solar_elevation_sin(city, t_s), 0.0, None) ** 1.15
    cloud = cloud_cover_pct(seed, city_index, t_s) / 100.0
    return clear * (1.0 - 0.75 * cloud**3.4)


def relative_humidity_pct(seed: int, city_index: int, t_s) -> np.ndarray:
    city = CITIES[city_index]
    temperature = temperature_c(seed, city_index, t_s)
    wet = 8.0 * smooth(t_s, seed, 12, city_index)
    return np.clip(70.0 - 1.5 * (temperature - city.mean_c) + wet, 12.0, 100.0)


def wind_speed_kmh(seed: int, city_index: int, t_s) -> np.ndarray:
    return np.clip(12.0 + 7.0 * smooth(t_s, seed, 13, city_index, periods_days=(0.9, 1.9, 3.1, 5.3)), 0.0, None)


VARIABLES = {
    "temperature_2m": (temperature_c, "°C", 1),
    "relative_humidity_2m": (relative_humidity_pct, "%", 0),
    "cloud_cover": (cloud_cover_pct, "%", 0),
    "shortwave_radiation": (shortwave_radiation_w_m2, "W/m²", 1),
    "wind_speed_10m": (wind_speed_kmh, "km/h", 1),
}


def nearest_city(latitude: float, longitude: float) -> int:
    """Index of the simulated city closest to a point (great-circle distance)."""
    lat1, lon1 = np.radians(latitude), np.radians(longitude)
    best, best_distance = 0, np.inf
    for i, city in enumerate(CITIES):
        lat2, lon2 = np.radians(city.latitude), np.radians(city.longitude)
        a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
        distance = 2 * np.arcsin(np.sqrt(a))
        if distance < best_distance:
            best, best_distance = i, distance
    return best


def at_location(seed: int, latitude: float, longitude: float, variable: str, t_s) -> np.ndarray:
    """A weather variable (a key of VARIABLES) where the simulated world has no city:
    the nearest city's weather, as the weather API serves it."""
    function = VARIABLES[variable][0]
    return function(seed, nearest_city(latitude, longitude), t_s)
