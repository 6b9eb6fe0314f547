"""Grid carbon intensity in the Electricity Maps API v3 format: `latest`, `history`
(the last 24 hours) and `past-range`. An `auth-token` header is accepted and ignored."""

from datetime import datetime, timedelta

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator import carbon
from simulator.config import SimulatorConfig
from simulator.params import BadRequest, floor_hour, iso_ms, time_window

MAX_RANGE_DAYS = 10  # Electricity Maps' limit for hourly past-range


def _args(request: Request) -> tuple[str, str]:
    zone = request.query_params.get("zone")
    if zone not in carbon.ZONES:
        message = f"Zone '{zone}' does not exist. Known zones: {', '.join(sorted(carbon.ZONES))}"
        raise BadRequest(message, {"status": "error", "message": message, "detail": message})
    factor = request.query_params.get("emissionFactorType", "lifecycle")
    if factor not in ("lifecycle", "direct"):
        message = "emissionFactorType must be lifecycle or direct"
        raise BadRequest(message, {"status": "error", "message": message, "detail": message})
    return zone, factor


def points(config: SimulatorConfig, zone: str, factor: str, hours: list[datetime], latest: datetime) -> list[dict]:
    """One Electricity Maps point per hour start; the current hour is an estimate."""
    values = carbon.intensity(config.seed, zone, np.array([int(h.timestamp()) for h in hours], dtype=np.int64), factor)
    out = []
    for hour, value in zip(hours, values, strict=True):
        estimated = hour == latest
        out.append({
            "zone": zone,
            "carbonIntensity": int(value),
            "datetime": iso_ms(hour),
            "updatedAt": iso_ms(hour + timedelta(minutes=52 if estimated else 75)),
            "createdAt": iso_ms(hour - timedelta(days=3)),
            "emissionFactorType": factor,
            "isEstimated": estimated,
            "estimationMethod": "TIME_SLICER_AVERAGE" if estimated else None,
        })
    return out


def routes(config: SimulatorConfig) -> list[Route]:
    async def latest(request: Request):
        """GET /v3/carbon-intensity/latest?zone=: the current hour (estimated)."""
        zone, factor = _args(request)
        hour = floor_hour(config.current_time())
        return JSONResponse(points(config, zone, factor, [hour], hour)[0])

    async def history(request: Request):
        """GET /v3/carbon-intensity/history?zone=: the last 24 hours, oldest first."""
        zone, factor = _args(request)
        now = floor_hour(config.current_time())
        hours = [now - timedelta(hours=h) for h in range(23, -1, -1)]
        return JSONResponse({"zone": zone, "history": points(config, zone, factor, hours, now)})

    async def past_range(request: Request):
        """GET /v3/carbon-intensity/past-range?zone=&start=&end=: hours starting in [start, end), none after now."""
        zone, factor = _args(request)
        start, end = time_window(request.query_params.get("start"), request.query_params.get("end"), MAX_RANGE_DAYS)
        now = floor_hour(config.current_time())
        cursor = floor_hour(start)
        if cursor < start:
            cursor += timedelta(hours=1)
        hours = []
        while cursor < end and cursor <= now:
            hours.append(cursor)
            cursor += timedelta(hours=1)
        return JSONResponse({"zone": zone, "data": points(config, zone, factor, hours, now)})

    return [
        Route("/v3/carbon-intensity/latest", latest),
        Route("/v3/carbon-intensity/history", history),
        Route("/v3/carbon-intensity/past-range", past_range),
    ]
