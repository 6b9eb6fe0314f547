"""Grid prices: ComEd's 5-minute feed format (`/api?type=5minutefeed`, newest first,
prices as strings in hundredths of the zone's currency per kWh; the format names no
currency) and a generic hourly day-ahead JSON that states its currency and unit
(GB: GBP/MWh, DE-LU: EUR/MWh, NSW1: AUD/MWh, COMED: USD/MWh)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator import prices
from simulator.config import SimulatorConfig
from simulator.fleet import CITIES
from simulator.params import BadRequest, iso

MAX_RANGE_DAYS = 31
STEP = prices.FIVE_MINUTES


def _zone(request: Request) -> str:
    zone = request.query_params.get("zone", "COMED")
    if zone not in prices.ZONES:
        raise BadRequest(f"unknown zone {zone!r}; known: {', '.join(sorted(prices.ZONES))}")
    return zone


def _feed(marks: np.ndarray, values: np.ndarray) -> list[dict]:
    return [{"millisUTC": str(int(m) * 1000), "price": f"{v:.1f}"} for m, v in zip(marks, values, strict=True)]


def comed(request: Request, config: SimulatorConfig) -> JSONResponse:
    """type=5minutefeed: the 5-minute prices of the last 24 h, or those stamped within
    [datestart, dateend] (YYYYMMDDhhmm, the zone's local time, both ends inclusive);
    type=currenthouraverage: the average of the current hour's prices so far.
    Each price is stamped with the end of its 5 minutes; none is later than now."""
    query = request.query_params
    kind = query.get("type")
    zone = _zone(request)
    if query.get("format", "json") != "json":
        raise BadRequest("the simulator serves format=json only")
    now_s = int(config.current_time().timestamp())
    latest = now_s - now_s % STEP
    if kind == "currenthouraverage":
        hour_start = latest - latest % 3600
        marks = np.arange(hour_start + STEP, latest + 1, STEP) if latest > hour_start else np.array([latest])
        average = float(np.mean(prices.five_minute_cents(config.seed, zone, marks)))
        return JSONResponse(_feed(np.array([latest]), np.array([average])))
    if kind != "5minutefeed":
        raise BadRequest("type must be 5minutefeed or currenthouraverage")
    if "datestart" in query or "dateend" in query:
        tz = ZoneInfo(CITIES[prices.ZONES[zone]].timezone)
        try:
            first = datetime.strptime(query["datestart"], "%Y%m%d%H%M").replace(tzinfo=tz)
            last = datetime.strptime(query["dateend"], "%Y%m%d%H%M").replace(tzinfo=tz)
        except (KeyError, ValueError):
            raise BadRequest("datestart and dateend are both required as YYYYMMDDhhmm") from None
        if last < first or last - first > timedelta(days=MAX_RANGE_DAYS):
            raise BadRequest(f"dateend must not be before datestart, and at most {MAX_RANGE_DAYS} days after it")
        lo, hi = int(first.timestamp()), min(int(last.timestamp()), latest)
    else:
        lo, hi = latest - 86400 + STEP, latest
    lo = -(-lo // STEP) * STEP
    marks = np.arange(hi - hi % STEP, lo - 1, -STEP)  # newest first, as ComEd lists them
    return JSONResponse(_feed(marks, prices.five_minute_cents(config.seed, zone, marks)))


def day_ahead(request: Request, config: SimulatorConfig) -> JSONResponse:
    """zone=&date=YYYY-MM-DD: the 24 hourly prices of that UTC day, published a day ahead."""
    zone = _zone(request)
    try:
        day = datetime.strptime(request.query_params.get("date", ""), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest("query parameter 'date' is required as YYYY-MM-DD") from None
    if day.date() > (config.current_time() + timedelta(days=1)).date():
        raise BadRequest(f"day-ahead prices for {day:%Y-%m-%d} are not published yet", status=404)
    hours = int(day.timestamp()) + 3600 * np.arange(24)
    values = prices.day_ahead_per_mwh(config.seed, zone, hours)
    currency = prices.CURRENCIES[zone]
    return JSONResponse({
        "zone": zone,
        "currency": currency,
        "unit": f"{currency}/MWh",
        "prices": [
            {"start": iso(datetime.fromtimestamp(int(h), UTC)), "end": iso(datetime.fromtimestamp(int(h) + 3600, UTC)), "price": float(v)}
            for h, v in zip(hours, values, strict=True)
        ],
    })


def routes(config: SimulatorConfig) -> list[Route]:
    async def comed_feed(request: Request):
        return comed(request, config)

    async def day_ahead_prices(request: Request):
        return day_ahead(request, config)

    return [Route("/api", comed_feed), Route("/v1/prices/day-ahead", day_ahead_prices)]
