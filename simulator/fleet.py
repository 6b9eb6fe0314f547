"""The simulated fleet: facilities in several cities and the meters inside them."""

from dataclasses import asdict, dataclass

import numpy as np

from simulator.noise import uniform


@dataclass(frozen=True)
class City:
    name: str
    latitude: float
    longitude: float
    timezone: str
    mean_c: float  # annual mean temperature
    seasonal_c: float  # half the summer–winter swing
    diurnal_c: float  # half the day–night swing
    price_zone: str
    grid_zone: str  # Electricity Maps zone key
    volts: float  # nominal phase voltage of a commercial supply
    hertz: float
    elevation_m: float

    @property
    def southern(self) -> bool:
        return self.latitude < 0


CITIES = [
    City("Chicago", 41.88, -87.63, "America/Chicago", 10.5, 14.0, 5.0, "COMED", "US-MIDA-PJM", 277.0, 60.0, 181.0),
    City("New York", 40.71, -74.01, "America/New_York", 13.0, 12.0, 4.5, "NYISO-NYC", "US-NY-NYIS", 277.0, 60.0, 10.0),
    City("Phoenix", 33.45, -112.07, "America/Phoenix", 24.0, 10.0, 8.0, "APS", "US-SW-AZPS", 277.0, 60.0, 331.0),
    City("San Francisco", 37.77, -122.42, "America/Los_Angeles", 14.5, 3.5, 4.0, "CAISO-SF", "US-CAL-CISO", 277.0, 60.0, 16.0),
    City("Toronto", 43.65, -79.38, "America/Toronto", 9.0, 14.0, 5.0, "IESO", "CA-ON", 347.0, 60.0, 76.0),
    City("London", 51.51, -0.13, "Europe/London", 11.5, 7.0, 4.0, "GB", "GB", 230.0, 50.0, 11.0),
    City("Berlin", 52.52, 13.40, "Europe/Berlin", 10.0, 10.0, 5.0, "DE-LU", "DE", 230.0, 50.0, 34.0),
    City("Sydney", -33.87, 151.21, "Australia/Sydney", 18.0, 5.0, 4.5, "NSW1", "AU-NSW", 230.0, 50.0, 3.0),
]


@dataclass(frozen=True)
class Archetype:
    """A kind of facility: its size, the end uses metered on the grid and the on-site
    supplies it has (each supply has its own meter)."""

    peak_kw: tuple[float, float]  # range of design peak demand
    end_uses: tuple[str, ...]  # each a grid submeter
    supplies: tuple[str, ...] = ()  # on-site sources, each metered as consumed on site


ARCHETYPES: dict[str, Archetype] = {
    "office": Archetype((150, 600), ("hvac", "lighting", "plug", "ev")),
    "retail": Archetype((80, 300), ("hvac", "lighting", "process"), ("solar",)),
    "warehouse": Archetype((100, 400), ("lighting", "process", "hvac"), ("solar",)),
    "data_centre": Archetype((800, 2000), ("process", "hvac", "lighting"), ("wind",)),
    "hospital": Archetype((600, 1500), ("hvac", "process", "lighting", "plug"), ("natural_gas",)),
    "crypto_mining": Archetype((1000, 3000), ("process", "hvac"), ("hydro",)),
    "home_pv_battery": Archetype((3, 8), ("hvac", "plug", "ev"), ("solar", "battery")),
}
# The first facilities cover every archetype, so even a small demo shows variety.
FIRST_ARCHETYPES = ["office", "data_centre", "home_pv_battery", "retail", "hospital", "warehouse", "crypto_mining"]
MIX = {"office": 0.3, "retail": 0.2, "warehouse": 0.15, "home_pv_battery": 0.2, "hospital": 0.05, "data_centre": 0.05, "crypto_mining": 0.05}
LABELS = {"data_centre": "Data centre", "crypto_mining": "Crypto mine", "home_pv_battery": "Home (PV + battery)"}
SUPPLY_END_USE = "main"  # on-site supply feeds the main switchboard, not one end use


@dataclass(frozen=True)
class Facility:
    facility_id: str
    name: str
    archetype: str
    timezone: str
    latitude: float
    longitude: float
    contract_demand_kw: float
    price_zone: str
    grid_zone: str
    peak_kw: float
    city_index: int

    def public(self) -> dict:
        """What the head-end API tells about the facility."""
        data = asdict(self)
        data.pop("peak_kw")
        data.pop("city_index")
        return data


@dataclass(frozen=True)
class Meter:
    meter_id: str
    facility_id: str
    energy_source: str
    end_use: str
    interval_s: int
    index: int  # position in the fleet's meter arrays
    facility_index: int


@dataclass(frozen=True)
class Fleet:
    facilities: list[Facility]
    meters: list[Meter]
    seed: int

    def city(self, facility: Facility) -> City:
        return CITIES[facility.city_index]

    def facility(self, facility_id: str) -> Facility:
        for facility in self.facilities:
            if facility.facility_id == facility_id:
                return facility
        raise KeyError(facility_id)


def build_fleet(seed: int, n_facilities: int, interval_s: int = 60) -> Fleet:
    """The facilities and their meters. The same seed and size always give the same
    fleet, and a larger fleet extends a smaller one (facility i never changes).

    The first seven facilities are one of each archetype, spread over different cities;
    the rest are a seeded mix. A facility's meters add up to its load: one grid
    submeter per end use, one meter per on-site supply.
    """
    facilities, meters = [], []
    names = list(MIX)
    weights = np.cumsum([MIX[n] for n in names])
    # 3 is coprime with the 8 cities: the first eight facilities land in eight cities.
    first_city = int(float(uniform(seed, 2, -1)) * len(CITIES))
    for i in range(n_facilities):
        if i < len(FIRST_ARCHETYPES):
            archetype = FIRST_ARCHETYPES[i]
        else:
            archetype = names[int(np.searchsorted(weights, float(uniform(seed, 1, i)) * weights[-1]))]
        if i < len(CITIES):
            city_index = (first_city + 3 * i) % len(CITIES)
        else:
            city_index = int(float(uniform(seed, 2, i)) * len(CITIES))
        city = CITIES[city_index]
        kind = ARCHETYPES[archetype]
        low, high = kind.peak_kw
        peak = round(low + (high - low) * float(uniform(seed, 3, i)), 1)
        # Contracts sized 1.1–1.5 × the design peak: some sites run close to the limit.
        contract = round(peak * (1.1 + 0.4 * float(uniform(seed, 4, i))), 0)
        facility_id = f"FAC-{i + 1:04d}"
        facilities.append(
            Facility(
                facility_id=facility_id,
                name=f"{LABELS.get(archetype, archetype.title())} {i + 1} — {city.name}",
                archetype=archetype,
                timezone=city.timezone,
                latitude=round(city.latitude + 0.2 * (float(uniform(seed, 5, i)) - 0.5), 4),
                longitude=round(city.longitude + 0.2 * (float(uniform(seed, 6, i)) - 0.5), 4),
                contract_demand_kw=contract,
                price_zone=city.price_zone,
                grid_zone=city.grid_zone,
                peak_kw=peak,
                city_index=city_index,
            )
        )
        submeters = [(end_use, "grid") for end_use in kind.end_uses] + [(SUPPLY_END_USE, s) for s in kind.supplies]
        for j, (end_use, source) in enumerate(submeters):
            meters.append(
                Meter(
                    meter_id=f"MTR-{i + 1:04d}-{j + 1:02d}",
                    facility_id=facility_id,
                    energy_source=source,
                    end_use=end_use,
                    interval_s=interval_s,
                    index=len(meters),
                    facility_index=i,
                )
            )
    return Fleet(facilities=facilities, meters=meters, seed=seed)


def facilities_for_meters(seed: int, meters: int) -> int:
    """The smallest fleet of this seed with at least `meters` meters (benchmarks size by meters)."""
    n = 1
    while (have := len(build_fleet(seed, n).meters)) < meters:
        n += max(1, (meters - have) // 5)
    return n
