"""Weather in Open-Meteo's format: `/v1/forecast` and `/v1/archive`.

The archive, and the forecast for hours already past, report the very weather that
drives the meters; forecast hours ahead of the simulator's clock carry an error that
grows with lead time and changes each hour the forecast is reissued.
"""

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator import weather
from simulator.config import SimulatorConfig
from simulator.fleet import CITIES
from simulator.noise import normal
from simulator.params import BadRequest, floor_hour

# Forecast error (one standard deviation) at 48 h lead; it grows with √lead.
FORECAST_ERROR = {"temperature_2m": 2.0, "relative_humidity_2m": 8.0, "cloud_cover": 20.0, "shortwave_radiation": 80.0, "wind_speed_10m": 4.0}
BOUNDED = {"relative_humidity_2m": (0, 100), "cloud_cover": (0, 100), "shortwave_radiation": (0, None), "wind_speed_10m": (0, None)}


def _error(reason: str) -> BadRequest:
    """Open-Meteo's error body."""
    return BadRequest(reason, {"error": True, "reason": reason})


def _float(request: Request, name: str, low: float, high: float) -> float:
    try:
        value = float(request.query_params[name])
    except (KeyError, ValueError):
        raise _error(f"Parameter '{name}' is required and must be a floating point number") from None
    if not low <= value <= high:
        raise _error(f"{name.title()} must be in range of {low:g} to {high:g}°. Given: {value}.")
    return value


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _error(f"Parameter '{name}' must be an integer between {low} and {high}")
    return value


def _date(request: Request, name: str) -> date:
    try:
        return datetime.strptime(request.query_params[name], "%Y-%m-%d").date()
    except (KeyError, ValueError):
        raise _error(f"Parameter '{name}' is required as YYYY-MM-DD (with the other of start_date, end_date)") from None


def _timezone(name: str, city_index: int) -> tuple[str, ZoneInfo | None]:
    """(name to report, zone or None for GMT)."""
    if name == "auto":
        name = CITIES[city_index].timezone
    if name in ("GMT", "UTC"):
        return "GMT", None
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _error(f"Invalid timezone {name!r}") from None


def open_meteo(request: Request, config: SimulatorConfig, archive: bool) -> JSONResponse:
    """The hourly weather of the city nearest (latitude, longitude), in Open-Meteo's shape."""
    started = time.perf_counter()
    query = request.query_params
    latitude, longitude = _float(request, "latitude", -90, 90), _float(request, "longitude", -180, 180)
    city_index = weather.nearest_city(latitude, longitude)
    tz_name, tz = _timezone(query.get("timezone", "GMT"), city_index)
    variables = [v for raw in query.getlist("hourly") for v in raw.split(",") if v]
    for variable in variables:
        if variable not in weather.VARIABLES:
            raise _error(f"Cannot initialize WeatherVariable from invalid String value {variable} for key hourly")
    timeformat = query.get("timeformat", "iso8601")
    if timeformat not in ("iso8601", "unixtime"):
        raise _error(f"Cannot initialize Timeformat from invalid String value {timeformat} for key timeformat")

    now = config.current_time()
    today = now.astimezone(tz or UTC).date()
    if archive or "start_date" in query or "end_date" in query:
        first, last = _date(request, "start_date"), _date(request, "end_date")
        if last < first:
            raise _error(f"Parameter 'end_date' ({last}) must not be before 'start_date' ({first})")
        if archive and last > today:
            raise _error(f"Parameter 'start_date' and 'end_date' are out of allowed range from 1940-01-01 to {today}")
        if (last - first).days > 366:
            raise _error("The simulator serves at most 366 days per request")
    else:
        past = _int(request, "past_days", 0, 0, 92)
        ahead = _int(request, "forecast_days", 7, 0, 16)
        first, last = today - timedelta(days=past), today + timedelta(days=ahead - 1)

    local_start = datetime.combine(first, datetime.min.time(), tzinfo=tz or UTC)
    local_end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=tz or UTC)
    hours = max(0, int((local_end - local_start).total_seconds()) // 3600)
    t_s = int(local_start.timestamp()) + 3600 * np.arange(hours, dtype=np.int64)

    if timeformat == "unixtime":
        times: list = [int(t) for t in t_s]
    else:
        times = [datetime.fromtimestamp(int(t), tz or UTC).strftime("%Y-%m-%dT%H:%M") for t in t_s]
    hourly: dict = {"time": times}
    units: dict = {"time": timeformat}
    issued = int(floor_hour(now).timestamp())
    for variable in variables:
        function, unit, decimals = weather.VARIABLES[variable]
        values = function(config.seed, city_index, t_s)
        if not archive:
            lead_h = np.clip((t_s - issued) / 3600.0, 0.0, None)
            error = FORECAST_ERROR[variable] * np.sqrt(lead_h / 48.0) * normal(config.seed, 60, city_index, t_s, issued)
            # No error where the truth is exactly zero: night-time irradiance stays dark.
            values = values + np.where((t_s > issued) & (values != 0), error, 0.0)
            if variable in BOUNDED:
                values = np.clip(values, *BOUNDED[variable])
        hourly[variable] = [round(float(v), decimals) if decimals else int(round(float(v))) for v in values]
        units[variable] = unit

    offset = local_start.utcoffset() or timedelta(0)
    city = CITIES[city_index]
    body = {
        # Open-Meteo snaps to its grid cell; ours is the nearest city's.
        "latitude": round(latitude, 4),
        "longitude": round(longitude, 4),
        "generationtime_ms": round((time.perf_counter() - started) * 1000, 3),
        "utc_offset_seconds": int(offset.total_seconds()),
        "timezone": tz_name,
        "timezone_abbreviation": "GMT" if tz is None else local_start.tzname(),
        "elevation": city.elevation_m,
    }
    if variables:
        body["hourly_units"] = units
        body["hourly"] = hourly
    return JSONResponse(body)


def routes(config: SimulatorConfig) -> list[Route]:
    async def forecast(request: Request):
        """GET /v1/forecast?latitude=&longitude=&hourly=...[&past_days=&forecast_days=|&start_date=&end_date=][&timezone=]"""
        return open_meteo(request, config, archive=False)

    async def archive(request: Request):
        """GET /v1/archive?latitude=&longitude=&start_date=&end_date=&hourly=...[&timezone=]"""
        return open_meteo(request, config, archive=True)

    return [Route("/v1/forecast", forecast), Route("/v1/archive", archive)]
