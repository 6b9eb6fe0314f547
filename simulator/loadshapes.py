"""Load shapes: what a facility draws for each end use, as a fraction of its design
peak, from its occupancy schedule (local time), the temperature and the daylight; and
what its on-site supplies deliver towards that load.

Functions take arrays shaped (timestamps, facilities of one archetype) and return the
same shape. A facility's meters add up to its load: `dispatch` decides how much of it
each on-site supply covers, and the grid end-use meters carry the rest pro rata.
"""

import numpy as np

END_USES = ("hvac", "lighting", "plug", "process", "ev")
SUPPLIES = ("solar", "wind", "hydro", "natural_gas", "battery")

# On-site capacity as a fraction of the facility's design peak.
SOLAR_CAPACITY = {"home_pv_battery": 0.9, "retail": 0.3, "warehouse": 0.45}
WIND_CAPACITY = 0.25  # a private-wire turbine share at a data centre
HYDRO_CONTRACT = 0.35  # a run-of-river supply line at a crypto mine
CHP_OUTPUT = 0.2  # a hospital's gas-fired combined heat and power unit, always on
BATTERY_POWER = 0.45  # a home battery, discharging through the evening peak

POWER_FACTOR = {"hvac": 0.86, "lighting": 0.95, "plug": 0.9, "process": 0.88, "ev": 0.97}
SOURCE_POWER_FACTOR = {"solar": 0.99, "battery": 0.99, "wind": 0.97, "natural_gas": 0.9, "hydro": 0.9}


def _ramp(hour, on, off):
    """≈1 between on and off (local hours), with half-hour shoulders."""
    return 1.0 / (1.0 + np.exp(-(hour - on) / 0.35)) / (1.0 + np.exp(-(off - hour) / 0.35))


def _bump(hour, centre, width):
    return np.exp(-(((hour - centre) / width) ** 2))


def occupancy(archetype: str, hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """How busy a facility is, 0–1, by local hour and weekday (Monday = 0 … Sunday = 6)."""
    workday = weekday < 5
    if archetype == "office":
        return np.where(workday, 0.1 + 0.9 * _ramp(hour, 7, 19), 0.1 + 0.1 * _ramp(hour, 9, 15))
    if archetype == "retail":
        return 0.15 + 0.85 * np.where(weekday == 6, _ramp(hour, 10, 18), _ramp(hour, 9, 21))
    if archetype == "warehouse":
        return 0.15 + np.where(workday, 0.85 * _ramp(hour, 6, 22), np.where(weekday == 5, 0.5 * _ramp(hour, 6, 14), 0.0))
    if archetype == "hospital":
        return 0.7 + 0.3 * _ramp(hour, 8, 20)
    if archetype == "home_pv_battery":
        # Mornings and evenings at home; weekends also the day.
        home = 0.3 + 0.3 * _bump(hour, 7.5, 1.5) + 0.7 * _bump(hour, 19.5, 2.5) + np.where(workday, 0.0, 0.3 * _ramp(hour, 9, 17))
        return np.minimum(1.0, home)
    return np.ones_like(hour)  # data centres and crypto mines never sleep


def _cooling(temperature):
    return np.clip(temperature - 18.0, 0.0, None) / 14.0


def _heating(temperature):
    return np.clip(12.0 - temperature, 0.0, None) / 20.0


def _hvac(share, occ, temperature, base=0.15, occupied=0.35, cooling=0.8, heating=0.4):
    # Setback when empty: the weather response shrinks with occupancy.
    response = (0.4 + 0.6 * occ) * (cooling * _cooling(temperature) + heating * _heating(temperature))
    return share * (base + occupied * occ + response)


def _lighting(share, occ, daylight):
    # Daylight through windows dims what lights are needed.
    return share * (0.08 + 0.92 * occ * (1.0 - 0.35 * daylight))


def end_use_loads(archetype: str, hour, weekday, temperature, daylight) -> dict[str, np.ndarray]:
    """Demand per end use, as fractions of the facility's design peak.

    temperature is the 2 m air temperature (°C) the weather API reports for the
    facility; daylight is the global horizontal irradiance / 1000 W/m².
    """
    occ = occupancy(archetype, hour, weekday)
    if archetype == "office":
        return {
            "hvac": _hvac(0.35, occ, temperature),
            "lighting": _lighting(0.2, occ, daylight),
            "plug": 0.25 * (0.2 + 0.8 * occ),
            "ev": 0.12 * np.where(weekday < 5, _bump(hour, 9.5, 2.0), 0.0),  # arrivals plug in
        }
    if archetype == "retail":
        return {
            "hvac": _hvac(0.35, occ, temperature),
            "lighting": _lighting(0.25, occ, daylight),
            # Refrigeration runs day and night and works harder when it is hot.
            "process": 0.25 * np.clip(0.8 + 0.02 * (temperature - 15.0), 0.5, 1.3),
        }
    if archetype == "warehouse":
        return {
            "lighting": _lighting(0.35, occ, daylight),
            "process": 0.3 * (0.1 + 0.9 * occ),
            "hvac": _hvac(0.15, occ, temperature),
        }
    if archetype == "data_centre":
        return {
            "process": np.full_like(hour, 0.6),  # IT load
            # Cooling all year, harder in the heat; economisers help when it is cold.
            "hvac": 0.35 * (0.55 + 0.8 * _cooling(temperature) - 0.2 * _heating(temperature)),
            "lighting": np.full_like(hour, 0.03),
        }
    if archetype == "hospital":
        return {
            "hvac": _hvac(0.35, occ, temperature, base=0.3, occupied=0.2),
            "process": 0.3 * (0.6 + 0.4 * occ),
            "lighting": 0.15 * (0.5 + 0.5 * occ),
            "plug": 0.15 * (0.5 + 0.5 * occ),
        }
    if archetype == "crypto_mining":
        return {
            "process": np.full_like(hour, 0.85),
            "hvac": 0.1 * (0.4 + 1.2 * _cooling(temperature)),
        }
    if archetype == "home_pv_battery":
        return {
            "hvac": 0.3 * (0.1 + (0.4 + 0.6 * occ) * (1.2 * _cooling(temperature) + 1.0 * _heating(temperature))),
            "plug": 0.05 + 0.35 * occ,
            "ev": 0.6 * (_ramp(hour, 22, 24.5) + _ramp(hour, -0.5, 2.5)),  # overnight charging
        }
    raise ValueError(f"unknown archetype {archetype!r}")


def wind_power_fraction(wind_kmh: np.ndarray) -> np.ndarray:
    """A turbine's output as a fraction of rating from the 10 m wind speed: scaled to
    hub height, cubic from cut-in (3 m/s) to rated (12 m/s), stopped above 25 m/s."""
    hub = np.asarray(wind_kmh) / 3.6 * (100.0 / 10.0) ** 0.14
    fraction = np.clip((hub**3 - 27.0) / (12.0**3 - 27.0), 0.0, 1.0)
    return np.where(hub > 25.0, 0.0, fraction)


def supply_potential(archetype: str, supply: str, hour, daylight, wind_kmh) -> np.ndarray:
    """What an on-site supply could deliver, as a fraction of the facility's peak."""
    if supply == "solar":
        return SOLAR_CAPACITY[archetype] * daylight
    if supply == "wind":
        return WIND_CAPACITY * wind_power_fraction(wind_kmh)
    if supply == "hydro":
        return np.full_like(hour, HYDRO_CONTRACT)
    if supply == "natural_gas":
        return np.full_like(hour, CHP_OUTPUT)
    if supply == "battery":
        # Charged from surplus PV at midday (not metered: a meter here reports discharge);
        # outside the evening window it is off, not trickling.
        return BATTERY_POWER * np.where((hour >= 16.0) & (hour < 23.0), _ramp(hour, 17, 22), 0.0)
    raise ValueError(f"unknown supply {supply!r}")


def dispatch(load: np.ndarray, potentials: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Cover the load from on-site supplies in the given order, each at most what is
    left; returns (used per supply, what the grid supplies). Surplus is exported and
    not metered here, so every supply meter reports energy consumed on site."""
    remaining = load
    used = {}
    for supply, potential in potentials.items():
        used[supply] = np.minimum(potential, remaining)
        remaining = remaining - used[supply]
    return used, remaining
