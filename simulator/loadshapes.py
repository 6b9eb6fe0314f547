"""Load shapes: each meter's demand as a fraction of its facility's peak, from the
facility's occupancy schedule (local time), the temperature and the daylight.

All functions take arrays shaped (timestamps, facilities) and return the same shape.
"""

import numpy as np


def _ramp(hour, on, off):
    """≈1 between on and off (local hours), with half-hour shoulders."""
    return 1.0 / (1.0 + np.exp(-(hour - on) / 0.35)) * 1.0 / (1.0 + np.exp(-(off - hour) / 0.35))


def _bump(hour, centre, width):
    return np.exp(-(((hour - centre) / width) ** 2))


def occupancy(archetype: np.ndarray, hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """How busy each facility is, 0–1. weekday: Monday = 0 … Sunday = 6."""
    workday = weekday < 5
    saturday = weekday == 5
    sunday = weekday == 6
    shapes = {
        "office": np.where(workday, 0.1 + 0.9 * _ramp(hour, 7, 19), 0.1 + 0.1 * _ramp(hour, 9, 15)),
        "retail": 0.15 + 0.85 * np.where(sunday, _ramp(hour, 10, 18), _ramp(hour, 9, 21)),
        "warehouse": 0.15 + np.where(workday, 0.85 * _ramp(hour, 6, 22), np.where(saturday, 0.5 * _ramp(hour, 6, 14), 0.0)),
        "data_centre": np.ones_like(hour),
        "hospital": 0.7 + 0.3 * _ramp(hour, 8, 20),
        "crypto_mining": np.ones_like(hour),
        "home_pv_battery": np.minimum(1.0, 0.3 + 0.3 * _bump(hour, 7.5, 1.5) + 0.7 * _bump(hour, 19.5, 2.5)),
    }
    result = np.zeros_like(hour)
    for name, shape in shapes.items():
        result = np.where(archetype == name, shape, result)
    return result


def meter_demand(
    end_use: str,
    source: str,
    archetype: np.ndarray,
    occ: np.ndarray,
    hour: np.ndarray,
    temperature: np.ndarray,
    daylight: np.ndarray,
) -> np.ndarray:
    """Demand of one kind of meter as a fraction of facility peak, for every facility."""
    cooling = np.clip(temperature - 18.0, 0.0, None) / 14.0
    heating = np.clip(12.0 - temperature, 0.0, None) / 20.0
    is_ = lambda name: archetype == name  # noqa: E731

    if source == "solar":
        capacity = np.where(is_("home_pv_battery"), 1.0, 0.3)
        return capacity * 0.85 * daylight
    if source == "battery":
        return 0.5 * _ramp(hour, 17, 21)
    if source == "natural_gas":
        return np.full_like(hour, 0.18)  # a CHP unit running continuously
    if source == "hydro":
        return np.full_like(hour, 0.33)  # a run-of-river supply contract
    if end_use == "hvac":
        share = np.where(is_("warehouse"), 0.15, np.where(is_("crypto_mining"), 0.08, 0.35))
        base = np.where(is_("data_centre"), 0.55, 0.15 + 0.35 * occ)
        return share * (base + 0.8 * cooling + 0.4 * heating)
    if end_use == "lighting":
        share = np.where(is_("warehouse"), 0.35, np.where(is_("data_centre"), 0.03, 0.2))
        return share * (0.08 + 0.92 * occ * (1.0 - 0.35 * daylight))
    if end_use == "plug":
        return 0.25 * (0.2 + 0.8 * occ)
    if end_use == "ev":
        office = 0.1 * occ * _bump(hour, 10.0, 2.0)
        home = 1.2 * (_ramp(hour, 22, 24.5) + _ramp(hour, -0.5, 2.5))
        return np.where(is_("home_pv_battery"), home, office)
    if end_use == "process":
        return np.select(
            [is_("retail"), is_("warehouse"), is_("data_centre"), is_("hospital"), is_("crypto_mining")],
            [0.2 * (0.8 + 0.02 * (temperature - 15.0)), 0.3 * (0.1 + 0.9 * occ), np.full_like(hour, 0.6), 0.3 * (0.6 + 0.4 * occ), np.full_like(hour, 0.62)],
            default=0.2 * occ,
        )
    if end_use == "main":  # a home's grid import: its load less what PV and battery cover
        load = occ + 0.3 * cooling + 0.5 * heating
        return np.clip(load - 0.85 * daylight - 0.5 * _ramp(hour, 17, 21), 0.05, None)
    return 0.2 * occ


POWER_FACTOR = {"hvac": 0.86, "lighting": 0.95, "plug": 0.9, "process": 0.88, "ev": 0.97, "main": 0.94}
SOURCE_POWER_FACTOR = {"solar": 0.99, "battery": 0.99, "natural_gas": 0.9, "hydro": 0.9}
