"""Weather in the Open-Meteo format (forecast and archive APIs)."""

from datetime import UTC, date, datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from resources.http import SourceApiResource, SourceError
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


class WeatherApiResource(SourceApiResource):
    """Open-Meteo (or a compatible server): hourly weather for a location, from the
    forecast API (recent days and the days ahead) or the historical archive."""

    url_setting: ClassVar[str] = "weather_api_url"
    feed: ClassVar[str] = "weather API (Open-Meteo)"

    archive_base_url: str | None = Field(
        default=None,
        description="Root of the archive API (Open-Meteo serves it from archive-api.open-meteo.com); unset = base_url.",
    )
    archive_min_age_days: int = Field(
        default=5,
        description="Days at least this old come from the archive (reanalysis lags ~5 days); newer ones from the forecast API.",
    )
    variables: list[str] = Field(default=list(VARIABLES), description="Open-Meteo hourly variables to fetch.")

    def hourly(self, latitude: float, longitude: float, first: date, last: date, archive: bool) -> Parsed:
        """Hourly rows for the UTC days first..last (inclusive) at one location."""
        params = {
            "latitude": latitude,
            "longitude": longitude,
            "hourly": ",".join(self.variables),
            "start_date": first.isoformat(),
            "end_date": last.isoformat(),
            "timezone": "GMT",
        }
        base = (self.archive_base_url or self.resolved_base_url()).rstrip("/") if archive else None
        path = "/v1/archive" if archive else "/v1/forecast"
        expected = "an Open-Meteo hourly JSON response"
        payload = self.get_json(path, params, expected, base_url=base)
        try:
            return parse_open_meteo(payload)
        except ValueError as exc:
            raise SourceError(f"GET {path} at ({latitude}, {longitude}): {exc}; expected {expected}") from None
