"""Weather in the Open-Meteo format (forecast and archive APIs)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from resources.parsing import Parsed

# Stored unit per variable, and how to convert the units Open-Meteo may answer in.
VARIABLES = {
    "temperature_2m": ("temperature_c", "°C", {"°C": lambda v: v, "°F": lambda v: (v - 32.0) * 5.0 / 9.0}),
    "relative_humidity_2m": ("relative_humidity_pct", "%", {"%": lambda v: v}),
    "cloud_cover": ("cloud_cover_pct", "%", {"%": lambda v: v}),
    "shortwave_radiation": ("shortwave_radiation_w_m2", "W/m²", {"W/m²": lambda v: v}),
    "wind_speed_10m": (
        "wind_speed_kmh",
        "km/h",
        {"km/h": lambda v: v, "m/s": lambda v: v * 3.6, "mph": lambda v: v * 1.609344, "kn": lambda v: v * 1.852},
    ),
}


def _to_utc(value, tz: ZoneInfo | None, offset_s: int) -> datetime:
    if isinstance(value, int | float):  # timeformat=unixtime is UTC epoch seconds
        return datetime.fromtimestamp(value, UTC)
    local = datetime.fromisoformat(value)
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    if tz is not None:  # the zone's own rules, so hours across a DST change land right
        return local.replace(tzinfo=tz).astimezone(UTC)
    return (local - timedelta(seconds=offset_s)).replace(tzinfo=UTC)


def parse_open_meteo(payload: dict) -> Parsed:
    """Hourly rows (UTC `time` + the known variables in stored units) from an Open-Meteo
    response. Unknown variables are ignored; missing values stay None; a unit we cannot
    convert rejects that variable for the whole response, naming it."""
    parsed = Parsed()
    hourly = payload.get("hourly")
    if not isinstance(hourly, dict) or "time" not in hourly:
        raise ValueError("not an Open-Meteo hourly response: no hourly.time array")
    units = payload.get("hourly_units", {})
    times = hourly["time"]
    tz = None
    name = payload.get("timezone")
    if name and name not in ("GMT", "UTC"):
        try:
            tz = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            tz = None
    offset = int(payload.get("utc_offset_seconds", 0) or 0)

    converters = {}
    for variable, (column, stored_unit, known_units) in VARIABLES.items():
        if variable not in hourly:
            continue
        values = hourly[variable]
        if len(values) != len(times):
            raise ValueError(f"hourly.{variable} has {len(values)} values for {len(times)} times")
        unit = units.get(variable, stored_unit)
        if unit not in known_units:
            parsed.reject({"variable": variable, "unit": unit}, f"unsupported unit {unit!r} for {variable}")
            continue
        converters[variable] = (column, known_units[unit], values)

    for i, raw_time in enumerate(times):
        try:
            row = {"time": _to_utc(raw_time, tz, offset)}
        except (TypeError, ValueError):
            parsed.reject({"time": raw_time}, f"unreadable time {raw_time!r}")
            continue
        for column, convert, values in converters.values():
            value = values[i]
            row[column] = None if value is None else round(convert(float(value)), 3)
        parsed.rows.append(row)
    return parsed
