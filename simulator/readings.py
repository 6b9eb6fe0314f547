"""Meter readings: generated for any time window, vectorised over (timestamps × meters).

A reading's values depend only on (seed, meter, timestamp), so any window, however it
is chunked, reproduces the same rows. Readings exist only for intervals that have
ended by the simulator's clock; outage windows have none; a configurable share of
rows is corrupted the ways real head-ends corrupt them.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from simulator import csvformat, weather
from simulator.fleet import CITIES, Fleet
from simulator.loadshapes import POWER_FACTOR, SOURCE_POWER_FACTOR, meter_demand, occupancy
from simulator.noise import normal, uniform

COLUMNS = (
    "ts", "meter_id", "facility_id", "interval_s", "energy_kwh", "active_power_kw", "reactive_power_kvar",
    "voltage_v", "current_a", "power_factor", "frequency_hz", "energy_source",
)
BAD_KINDS = ("negative_energy", "nan_energy", "power_factor_above_one", "zero_voltage", "future_timestamp", "duplicate", "unknown_meter")
MODE_FACTORS = {"normal": 1.0, "peak": 1.35}
ROWS_PER_CHUNK = 150_000


@dataclass(frozen=True)
class ModeWindow:
    facility_id: str
    mode: str  # normal | peak | outage
    start: datetime
    end: datetime


def _iso(t_s: np.ndarray) -> list[str]:
    return [datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in t_s]


class ReadingGenerator:
    """Readings of one fleet, in (timestamp, meter) order."""

    def __init__(self, fleet: Fleet, interval_s: int, bad_row_rate: float = 0.0):
        self.fleet = fleet
        self.interval_s = interval_s
        self.bad_row_rate = bad_row_rate
        facilities = fleet.facilities
        meters = fleet.meters
        self.archetype = np.array([f.archetype for f in facilities])
        self.city = np.array([f.city_index for f in facilities])
        self.peak_kw = np.array([f.peak_kw for f in facilities])
        self.timezones = sorted({f.timezone for f in facilities})
        self.tz_of = np.array([self.timezones.index(f.timezone) for f in facilities])
        self.meter_facility = np.array([m.facility_index for m in meters])
        self.meter_ids = [m.meter_id for m in meters]
        self.kinds = sorted({(m.end_use, m.energy_source) for m in meters})
        self.meter_kind = np.array([self.kinds.index((m.end_use, m.energy_source)) for m in meters])
        self.power_factor = np.array([SOURCE_POWER_FACTOR.get(m.energy_source, POWER_FACTOR.get(m.end_use, 0.9)) for m in meters])
        home = self.archetype[self.meter_facility] == "home_pv_battery"
        phase_volts = np.array([CITIES[c].volts for c in self.city])[self.meter_facility]
        self.volts = np.where(home, np.where(phase_volts > 250, 240.0, 230.0), phase_volts)
        self.phases = np.where(home, 1.0, 3.0)
        self.hertz = np.array([CITIES[c].hertz for c in self.city])[self.meter_facility]
        self.id_bytes = csvformat.text_bytes(self.meter_ids)
        self.facility_bytes = csvformat.text_bytes([m.facility_id for m in meters])
        self.source_bytes = csvformat.text_bytes([m.energy_source for m in meters])
        self.interval_bytes = csvformat.text_bytes([str(interval_s)])
        self.unknown_bytes = csvformat.text_bytes(["MTR-9999-99"])

    def timestamps(self, start: datetime, end: datetime, now: datetime) -> np.ndarray:
        """Interval starts in [start, end) whose interval has ended by `now`."""
        step = self.interval_s
        first = -(-int(start.timestamp()) // step) * step
        last = min(int(end.timestamp()), int(now.timestamp()) - step + 1)
        return np.arange(first, max(first, last), step, dtype=np.int64)

    def values(self, t_s: np.ndarray, modes: list[ModeWindow]) -> dict[str, np.ndarray]:
        """Every reading's fields as (timestamps, meters) arrays, plus a `present` mask."""
        seed = self.fleet.seed
        k = t_s.size
        hour = np.empty((k, len(self.archetype)))
        weekday = np.empty((k, len(self.archetype)), dtype=np.int64)
        index = pd.DatetimeIndex(t_s * 1_000_000_000, tz="UTC")
        for i, tz in enumerate(self.timezones):
            local = index.tz_convert(tz)
            columns = self.tz_of == i
            hour[:, columns] = (local.hour + local.minute / 60.0 + local.second / 3600.0).to_numpy()[:, None]
            weekday[:, columns] = local.day_of_week.to_numpy()[:, None]
        temperature = np.empty_like(hour)
        daylight = np.empty_like(hour)
        for c in np.unique(self.city):
            columns = self.city == c
            temperature[:, columns] = weather.temperature_c(seed, int(c), t_s)[:, None]
            daylight[:, columns] = (weather.shortwave_radiation_w_m2(seed, int(c), t_s) / 1000.0)[:, None]

        occ = occupancy(self.archetype[None, :], hour, weekday)
        fraction = np.empty((k, len(self.meter_ids)))
        for kind_index, (end_use, source) in enumerate(self.kinds):
            shape = meter_demand(end_use, source, self.archetype[None, :], occ, hour, temperature, daylight)
            columns = self.meter_kind == kind_index
            fraction[:, columns] = shape[:, self.meter_facility[columns]]

        meter_index = np.arange(len(self.meter_ids))[None, :]
        t = t_s[:, None]
        factor = np.ones_like(fraction)
        present = np.ones(fraction.shape, dtype=bool)
        for window in modes:
            in_window = (t_s >= window.start.timestamp()) & (t_s < window.end.timestamp())
            facility_columns = np.array([m.facility_id == window.facility_id for m in self.fleet.meters])
            if window.mode == "outage":
                present[np.ix_(in_window, facility_columns)] = False
            else:
                factor[np.ix_(in_window, facility_columns)] = MODE_FACTORS[window.mode]

        kw = np.clip(fraction * self.peak_kw[self.meter_facility] * factor * (1.0 + 0.04 * normal(seed, 20, meter_index, t)), 0.0, None)
        pf = np.clip(self.power_factor + 0.01 * normal(seed, 21, meter_index, t), 0.5, 1.0)
        volts = self.volts * (1.0 + 0.01 * normal(seed, 22, meter_index, t))
        return {
            "energy_kwh": kw * self.interval_s / 3600.0,
            "active_power_kw": kw,
            "reactive_power_kvar": kw * np.tan(np.arccos(pf)),
            "voltage_v": volts,
            "current_a": kw * 1000.0 / (self.phases * volts * pf),
            "power_factor": pf,
            "frequency_hz": np.broadcast_to(self.hertz + 0.015 * normal(seed, 23, self.city[self.meter_facility][None, :], t), kw.shape),
            "present": present,
        }

    def _bad_kinds(self, t_s: np.ndarray) -> np.ndarray:
        """Per (timestamp, meter): -1 for a good row, else an index into BAD_KINDS."""
        shape = (t_s.size, len(self.meter_ids))
        if self.bad_row_rate <= 0:
            return np.full(shape, -1)
        meter_index = np.arange(len(self.meter_ids))[None, :]
        t = t_s[:, None]
        bad = uniform(self.fleet.seed, 30, meter_index, t) < self.bad_row_rate
        kind = (uniform(self.fleet.seed, 31, meter_index, t) * len(BAD_KINDS)).astype(np.int64)
        return np.where(bad, kind, -1)

    def chunks(self, start: datetime, end: datetime, now: datetime, modes: list[ModeWindow], meter_mask: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, dict, np.ndarray]]:
        """(timestamps, values, bad kinds) for bounded slices of the window."""
        t_all = self.timestamps(start, end, now)
        per_chunk = max(1, ROWS_PER_CHUNK // max(1, len(self.meter_ids)))
        for i in range(0, t_all.size, per_chunk):
            t_s = t_all[i : i + per_chunk]
            values = self.values(t_s, modes)
            if meter_mask is not None:
                values["present"] = values["present"] & meter_mask[None, :]
            yield t_s, values, self._bad_kinds(t_s)

    def csv(self, start: datetime, end: datetime, now: datetime, modes: list[ModeWindow], meter_mask: np.ndarray | None = None) -> Iterator[bytes]:
        """The window as CSV (header first), in chunks of about ROWS_PER_CHUNK rows."""
        yield (",".join(COLUMNS) + "\n").encode()
        n_meters = len(self.meter_ids)
        for t_s, values, bad in self.chunks(start, end, now, modes, meter_mask):
            present = values["present"].ravel()
            bad = bad.ravel()
            energy = values["energy_kwh"].copy().ravel()
            pf = values["power_factor"].copy().ravel()
            volts = values["voltage_v"].copy().ravel()
            energy[bad == 0] = -np.abs(energy[bad == 0]) - 0.001
            energy[bad == 1] = np.nan
            pf[bad == 2] = 1.0 + 0.05 + 0.45 * (pf[bad == 2] - 0.5)
            volts[bad == 3] = 0.0
            repeats = np.where(present, np.where(bad == 5, 2, 1), 0)
            rows = np.repeat(np.arange(present.size), repeats)
            if rows.size == 0:
                continue
            meters = rows % n_meters
            ts_field = csvformat.text_bytes(_iso(t_s))[rows // n_meters]
            future = bad[rows] == 4
            if future.any():
                ts_field[future] = csvformat.text_bytes(_iso(t_s[rows[future] // n_meters] + 30 * 86400))
            id_field = self.id_bytes[meters]
            unknown = bad[rows] == 6
            if unknown.any():
                id_field[unknown] = self.unknown_bytes[0]
            yield csvformat.join_rows([
                ts_field,
                id_field,
                self.facility_bytes[meters],
                np.broadcast_to(self.interval_bytes, (rows.size, self.interval_bytes.shape[1])),
                # Integer digits sized to each quantity's physical range (a 10 MW site at most).
                csvformat.fixed_bytes(energy[rows], 6, int_digits=5),
                csvformat.fixed_bytes(values["active_power_kw"].ravel()[rows], 3, int_digits=5),
                csvformat.fixed_bytes(values["reactive_power_kvar"].ravel()[rows], 3, int_digits=5),
                csvformat.fixed_bytes(volts[rows], 1, int_digits=3),
                csvformat.fixed_bytes(values["current_a"].ravel()[rows], 2, int_digits=5),
                csvformat.fixed_bytes(pf[rows], 3, int_digits=1),
                csvformat.fixed_bytes(values["frequency_hz"].ravel()[rows], 3, int_digits=2),
                self.source_bytes[meters],
            ])

    def frame(self, start: datetime, end: datetime, now: datetime, modes: list[ModeWindow] | None = None) -> pd.DataFrame:
        """The window as a DataFrame, for tests and notebooks (the CSV path is the fast one)."""
        import io

        body = b"".join(self.csv(start, end, now, modes or []))
        return pd.read_csv(io.BytesIO(body))
