"""The simulator's HTTP server: one Starlette app on loopback for every outside feed.

Routes mimic the real services' formats: a meter head-end (`/v1/...`), Open-Meteo
(`/v1/forecast`, `/v1/archive`), ComEd's price feed (`/api`) plus generic day-ahead
prices, and Electricity Maps (`/v3/carbon-intensity/...`). `/v1/sim/modes` puts a
facility into peak or outage for a window.
"""

import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from simulator import carbon, prices, weather
from simulator.config import SimulatorConfig
from simulator.fleet import CITIES, build_fleet
from simulator.readings import ModeWindow, ReadingGenerator

MAX_READINGS_WINDOW = timedelta(days=31)
MAX_CARBON_RANGE = timedelta(days=10)
MAX_PRICE_RANGE = timedelta(days=31)
FORECAST_ERROR = {"temperature_2m": 2.0, "relative_humidity_2m": 8.0, "cloud_cover": 20.0, "shortwave_radiation": 80.0, "wind_speed_10m": 4.0}


class BadRequest(Exception):
    def __init__(self, detail: str, body: dict | None = None, status: int = 400):
        super().__init__(detail)
        self.body = body or {"detail": detail}
        self.status = status


def parse_time(value: str | None, name: str) -> datetime:
    if not value:
        raise BadRequest(f"query parameter {name!r} is required (ISO 8601, e.g. 2026-01-05T10:00:00Z)")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"query parameter {name!r} is not an ISO 8601 timestamp: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _float(request: Request, name: str) -> float:
    try:
        return float(request.query_params[name])
    except (KeyError, ValueError):
        raise BadRequest(f"Parameter '{name}' is required and must be a number", {"error": True, "reason": f"Parameter '{name}' is required and must be a number"}) from None


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        value = -1
    if not low <= value <= high:
        reason = f"Parameter '{name}' must be an integer between {low} and {high}"
        raise BadRequest(reason, {"error": True, "reason": reason})
    return value


def _ms(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def create_app(config: SimulatorConfig) -> Starlette:
    fleet = build_fleet(config.seed, config.facilities, config.interval_s)
    generator = ReadingGenerator(fleet, config.interval_s, config.bad_row_rate)
    facility_ids = {f.facility_id for f in fleet.facilities}
    modes: list[ModeWindow] = []
    lock = threading.Lock()

    async def healthz(request: Request):
        return JSONResponse({"status": "ok"})

    async def facilities(request: Request):
        return JSONResponse([f.public() for f in fleet.facilities])

    async def meters(request: Request):
        return JSONResponse([
            {"meter_id": m.meter_id, "facility_id": m.facility_id, "energy_source": m.energy_source, "end_use": m.end_use, "interval_s": m.interval_s}
            for m in fleet.meters
        ])

    async def readings(request: Request):
        start = parse_time(request.query_params.get("start"), "start")
        end = parse_time(request.query_params.get("end"), "end")
        if end <= start:
            raise BadRequest(f"end ({end:%Y-%m-%dT%H:%M:%SZ}) must be after start ({start:%Y-%m-%dT%H:%M:%SZ})")
        if end - start > MAX_READINGS_WINDOW:
            raise BadRequest(f"the window may span at most {MAX_READINGS_WINDOW.days} days; page through longer ranges")
        output = request.query_params.get("format", "csv")
        if output not in ("csv", "ndjson"):
            raise BadRequest(f"format must be csv or ndjson, got {output!r}")
        mask = None
        if request.query_params.get("facility_id"):
            wanted = set(request.query_params["facility_id"].split(","))
            unknown = sorted(wanted - facility_ids)
            if unknown:
                raise BadRequest(f"unknown facility_id: {', '.join(unknown)}")
            mask = np.array([m.facility_id in wanted for m in fleet.meters])
        with lock:
            windows = list(modes)
        body = generator.csv(start, end, config.current_time(), windows, mask)
        if output == "csv":
            return StreamingResponse(body, media_type="text/csv; charset=utf-8")
        return StreamingResponse(_ndjson(body), media_type="application/x-ndjson")

    async def list_modes(request: Request):
        with lock:
            return JSONResponse([_mode_json(w) for w in modes])

    async def add_mode(request: Request):
        try:
            data = await request.json()
            window = ModeWindow(
                facility_id=str(data["facility_id"]), mode=str(data["mode"]),
                start=parse_time(data.get("start"), "start"), end=parse_time(data.get("end"), "end"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BadRequest(f"expected JSON with facility_id, mode, start, end: {exc}") from None
        if window.facility_id not in facility_ids:
            raise BadRequest(f"unknown facility_id {window.facility_id!r}")
        if window.mode not in ("normal", "peak", "outage"):
            raise BadRequest("mode must be normal, peak or outage")
        if window.end <= window.start:
            raise BadRequest("end must be after start")
        with lock:
            modes.append(window)
        return JSONResponse(_mode_json(window), status_code=201)

    async def forecast(request: Request):
        return _open_meteo(request, config, archive=False)

    async def archive(request: Request):
        return _open_meteo(request, config, archive=True)

    async def comed(request: Request):
        return _comed(request, config)

    async def day_ahead(request: Request):
        zone = request.query_params.get("zone", "COMED")
        if zone not in prices.ZONES:
            raise BadRequest(f"unknown zone {zone!r}; known: {', '.join(sorted(prices.ZONES))}")
        try:
            day = datetime.strptime(request.query_params.get("date", ""), "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise BadRequest("query parameter 'date' is required as YYYY-MM-DD") from None
        if day.date() > (config.current_time() + timedelta(days=1)).date():
            raise BadRequest(f"day-ahead prices for {day:%Y-%m-%d} are not published yet", status=404)
        hours = int(day.timestamp()) + 3600 * np.arange(24)
        values = prices.day_ahead_usd_mwh(config.seed, zone, hours)
        return JSONResponse({
            "zone": zone, "currency": "USD", "unit": "USD/MWh",
            "prices": [
                {"start": _iso_z(h), "end": _iso_z(h + 3600), "price": float(v)} for h, v in zip(hours, values, strict=True)
            ],
        })

    async def carbon_latest(request: Request):
        zone, factor = _carbon_args(request)
        hour = _floor_hour(config.current_time())
        return JSONResponse(_carbon_points(config, zone, factor, [hour], hour)[0])

    async def carbon_history(request: Request):
        zone, factor = _carbon_args(request)
        latest = _floor_hour(config.current_time())
        hours = [latest - timedelta(hours=h) for h in range(23, -1, -1)]
        return JSONResponse({"zone": zone, "history": _carbon_points(config, zone, factor, hours, latest)})

    async def carbon_past_range(request: Request):
        zone, factor = _carbon_args(request)
        start = parse_time(request.query_params.get("start"), "start")
        end = parse_time(request.query_params.get("end"), "end")
        if end <= start or end - start > MAX_CARBON_RANGE:
            raise BadRequest(f"start must be before end, at most {MAX_CARBON_RANGE.days} days apart")
        latest = _floor_hour(config.current_time())
        hours = []
        cursor = _floor_hour(start) if _floor_hour(start) == start else _floor_hour(start) + timedelta(hours=1)
        while cursor < end and cursor <= latest:
            hours.append(cursor)
            cursor += timedelta(hours=1)
        return JSONResponse({"zone": zone, "data": _carbon_points(config, zone, factor, hours, latest)})

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/v1/facilities", facilities),
            Route("/v1/meters", meters),
            Route("/v1/readings", readings),
            Route("/v1/sim/modes", list_modes, methods=["GET"]),
            Route("/v1/sim/modes", add_mode, methods=["POST"]),
            Route("/v1/forecast", forecast),
            Route("/v1/archive", archive),
            Route("/api", comed),
            Route("/v1/prices/day-ahead", day_ahead),
            Route("/v3/carbon-intensity/latest", carbon_latest),
            Route("/v3/carbon-intensity/history", carbon_history),
            Route("/v3/carbon-intensity/past-range", carbon_past_range),
        ],
        exception_handlers={BadRequest: lambda request, exc: JSONResponse(exc.body, status_code=exc.status)},
    )
    app.state.fleet = fleet
    return app


def _ndjson(csv_chunks):
    import io

    header = next(csv_chunks)
    for chunk in csv_chunks:
        frame = pd.read_csv(io.BytesIO(header + chunk), dtype={"meter_id": str, "facility_id": str})
        yield frame.to_json(orient="records", lines=True).encode()


def _mode_json(window: ModeWindow) -> dict:
    return {"facility_id": window.facility_id, "mode": window.mode, "start": _iso_z(window.start.timestamp()), "end": _iso_z(window.end.timestamp())}


def _iso_z(t_s) -> str:
    return datetime.fromtimestamp(int(t_s), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _open_meteo(request: Request, config: SimulatorConfig, archive: bool) -> JSONResponse:
    started = time.perf_counter()
    latitude, longitude = _float(request, "latitude"), _float(request, "longitude")
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        reason = "Latitude must be in range of -90 to 90°. Longitude must be in range of -180 to 180°."
        raise BadRequest(reason, {"error": True, "reason": reason})
    city_index = weather.nearest_city(latitude, longitude)
    tz_name = request.query_params.get("timezone", "GMT")
    if tz_name == "auto":
        tz_name = CITIES[city_index].timezone
    try:
        tz = UTC if tz_name in ("GMT", "UTC") else ZoneInfo(tz_name)
    except Exception:
        reason = f"Invalid timezone {tz_name!r}"
        raise BadRequest(reason, {"error": True, "reason": reason}) from None
    variables = [v for v in request.query_params.get("hourly", "").split(",") if v]
    for variable in variables:
        if variable not in weather.VARIABLES:
            reason = f"Cannot initialize WeatherVariable from invalid String value {variable} for key hourly"
            raise BadRequest(reason, {"error": True, "reason": reason})

    now = config.current_time()
    today = now.astimezone(tz).date()
    if "start_date" in request.query_params or archive:
        try:
            first = datetime.strptime(request.query_params["start_date"], "%Y-%m-%d").date()
            last = datetime.strptime(request.query_params["end_date"], "%Y-%m-%d").date()
        except (KeyError, ValueError):
            reason = "Parameter 'start_date' and 'end_date' are required as YYYY-MM-DD"
            raise BadRequest(reason, {"error": True, "reason": reason}) from None
        if last < first or (archive and last > today):
            reason = f"Parameter 'end_date' is out of allowed range from {first} to {today}"
            raise BadRequest(reason, {"error": True, "reason": reason})
    else:
        past = _int(request, "past_days", 0, 0, 92)
        ahead = _int(request, "forecast_days", 7, 0, 16)
        first = today - timedelta(days=past)
        last = today + timedelta(days=max(ahead, 1) - 1)
    local_start = datetime.combine(first, datetime.min.time(), tzinfo=tz)
    hours = int((datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=tz) - local_start).total_seconds() // 3600)
    t_s = int(local_start.timestamp()) + 3600 * np.arange(hours)

    unix = request.query_params.get("timeformat") == "unixtime"
    hourly: dict = {"time": [int(t) for t in t_s] if unix else [datetime.fromtimestamp(int(t), tz).strftime("%Y-%m-%dT%H:%M") for t in t_s]}
    units: dict = {"time": "unixtime" if unix else "iso8601"}
    issued = int(_floor_hour(now).timestamp())
    for variable in variables:
        function, unit, decimals = weather.VARIABLES[variable]
        values = function(config.seed, city_index, t_s)
        if not archive:
            # Forecasts beyond now err more the further ahead they look, and change as they are reissued.
            from simulator.noise import normal

            lead_h = np.clip((t_s - issued) / 3600.0, 0.0, None)
            error = FORECAST_ERROR[variable] * np.sqrt(lead_h / 48.0) * normal(config.seed, 60, city_index, t_s, issued)
            # No error where the truth is exactly zero (night-time irradiance stays dark).
            values = values + np.where((t_s > issued) & (values != 0), error, 0.0)
            if variable in ("relative_humidity_2m", "cloud_cover"):
                values = np.clip(values, 0, 100)
            elif variable in ("shortwave_radiation", "wind_speed_10m"):
                values = np.clip(values, 0, None)
        hourly[variable] = [round(float(v), decimals) if decimals else int(round(float(v))) for v in values]
        units[variable] = unit
    offset = local_start.utcoffset() or timedelta(0)
    body = {
        "latitude": round(latitude, 4), "longitude": round(longitude, 4),
        "generationtime_ms": round((time.perf_counter() - started) * 1000, 3),
        "utc_offset_seconds": int(offset.total_seconds()),
        "timezone": "GMT" if tz is UTC else tz_name,
        "timezone_abbreviation": "GMT" if tz is UTC else local_start.tzname(),
        "elevation": 150.0,
    }
    if variables:
        body["hourly_units"] = units
        body["hourly"] = hourly
    return JSONResponse(body)


def _comed(request: Request, config: SimulatorConfig) -> JSONResponse:
    kind = request.query_params.get("type")
    zone = request.query_params.get("zone", "COMED")
    if zone not in prices.ZONES:
        raise BadRequest(f"unknown zone {zone!r}; known: {', '.join(sorted(prices.ZONES))}")
    if request.query_params.get("format", "json") != "json":
        raise BadRequest("the simulator serves format=json only")
    now_s = int(config.current_time().timestamp())
    latest = now_s - now_s % prices.FIVE_MINUTES
    if kind == "currenthouraverage":
        hour_start = latest - latest % 3600
        marks = np.arange(hour_start + prices.FIVE_MINUTES, latest + 1, prices.FIVE_MINUTES) if latest > hour_start else np.array([latest])
        average = float(np.mean(prices.five_minute_cents(config.seed, zone, marks)))
        return JSONResponse([{"millisUTC": str(latest * 1000), "price": f"{average:.1f}"}])
    if kind != "5minutefeed":
        raise BadRequest("type must be 5minutefeed or currenthouraverage")
    tz = ZoneInfo(CITIES[prices.ZONES[zone]].timezone)
    if "datestart" in request.query_params or "dateend" in request.query_params:
        try:
            # ComEd reads these in its own local time (Central); each zone uses its own.
            first = datetime.strptime(request.query_params["datestart"], "%Y%m%d%H%M").replace(tzinfo=tz)
            last = datetime.strptime(request.query_params["dateend"], "%Y%m%d%H%M").replace(tzinfo=tz)
        except (KeyError, ValueError):
            raise BadRequest("datestart and dateend are both required as YYYYMMDDhhmm") from None
        if last < first or last - first > MAX_PRICE_RANGE:
            raise BadRequest(f"dateend must not be before datestart, at most {MAX_PRICE_RANGE.days} days apart")
        lo, hi = int(first.timestamp()), min(int(last.timestamp()), latest)
    else:
        lo, hi = latest - 86400 + prices.FIVE_MINUTES, latest
    lo = -(-lo // prices.FIVE_MINUTES) * prices.FIVE_MINUTES
    marks = np.arange(hi - hi % prices.FIVE_MINUTES, lo - 1, -prices.FIVE_MINUTES)
    values = prices.five_minute_cents(config.seed, zone, marks)
    return JSONResponse([{"millisUTC": str(int(m) * 1000), "price": f"{v:.1f}"} for m, v in zip(marks, values, strict=True)])


def _carbon_args(request: Request) -> tuple[str, str]:
    zone = request.query_params.get("zone")
    if zone not in carbon.ZONES:
        raise BadRequest(f"Zone {zone!r} does not exist.", {"status": "error", "message": f"Zone '{zone}' does not exist."}, status=404)
    factor = request.query_params.get("emissionFactorType", "lifecycle")
    if factor not in ("lifecycle", "direct"):
        raise BadRequest("emissionFactorType must be lifecycle or direct", {"status": "error", "message": "emissionFactorType must be lifecycle or direct"})
    return zone, factor


def _carbon_points(config: SimulatorConfig, zone: str, factor: str, hours: list[datetime], latest: datetime) -> list[dict]:
    values = carbon.intensity(config.seed, zone, np.array([int(h.timestamp()) for h in hours]), factor)
    points = []
    for hour, value in zip(hours, values, strict=True):
        estimated = hour == latest
        points.append({
            "zone": zone,
            "carbonIntensity": int(value),
            "datetime": _ms(hour),
            "updatedAt": _ms(hour + timedelta(minutes=52 if estimated else 75)),
            "createdAt": _ms(hour - timedelta(days=3)),
            "emissionFactorType": factor,
            "isEstimated": estimated,
            "estimationMethod": "TIME_SLICER_AVERAGE" if estimated else None,
        })
    return points


class BackgroundServer:
    """An ASGI app served by uvicorn in a daemon thread on loopback."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
        self.server.install_signal_handlers = lambda: None  # the main thread owns signals
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.host = host
        self.url = ""

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start (is the port in use?)")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{self.host}:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class SimulatorServer(BackgroundServer):
    """The simulator on loopback (port 0 picks a free port); `url` is set by start()."""

    def __init__(self, config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0):
        self.config = config
        super().__init__(create_app(config), host, port)
