"""The meter head-end API: the fleet registry, streamed readings, and the operating
modes (peak, outage) a test or demo can put a facility into."""

import json

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from simulator.bms_api import CommandBook
from simulator.config import SimulatorConfig
from simulator.fleet import Fleet
from simulator.modes import MODES, ModeBook, ModeWindow
from simulator.params import BadRequest, iso, parse_time, time_window
from simulator.readings import ReadingGenerator

MAX_READINGS_DAYS = 31


def routes(config: SimulatorConfig, fleet: Fleet, book: ModeBook, commands: CommandBook | None = None) -> list[Route]:
    generator = ReadingGenerator(fleet, config.interval_s, config.bad_row_rate)
    facility_ids = {f.facility_id for f in fleet.facilities}

    async def facilities(request: Request):
        """GET /v1/facilities: the facility registry."""
        return JSONResponse([f.public() for f in fleet.facilities])

    async def meters(request: Request):
        """GET /v1/meters: the meter registry."""
        return JSONResponse([
            {"meter_id": m.meter_id, "facility_id": m.facility_id, "energy_source": m.energy_source, "end_use": m.end_use, "interval_s": m.interval_s}
            for m in fleet.meters
        ])

    async def readings(request: Request):
        """GET /v1/readings?start=&end=[&format=csv|ndjson][&facility_id=A,B]: readings with
        start <= ts < end whose interval has ended by the simulator's clock, streamed
        in time chunks, ordered by ts then meter."""
        query = request.query_params
        start, end = time_window(query.get("start"), query.get("end"), MAX_READINGS_DAYS)
        output = query.get("format", "csv")
        if output not in ("csv", "ndjson"):
            raise BadRequest(f"format must be csv or ndjson, got {output!r}")
        mask = None
        if query.get("facility_id"):
            wanted = {f.strip() for f in query["facility_id"].split(",") if f.strip()}
            unknown = sorted(wanted - facility_ids)
            if unknown:
                raise BadRequest(f"unknown facility_id: {', '.join(unknown)}")
            mask = np.array([m.facility_id in wanted for m in fleet.meters])
        # The clock, the modes and the BMS commands are read once: one response, one consistent state.
        now, windows = config.current_time(), book.snapshot() + (commands.shifts() if commands else [])
        if output == "csv":
            return StreamingResponse(generator.csv(start, end, now, windows, mask), media_type="text/csv; charset=utf-8")
        return StreamingResponse(generator.ndjson(start, end, now, windows, mask), media_type="application/x-ndjson")

    async def list_modes(request: Request):
        """GET /v1/sim/modes: the windows set so far, in order (the last set wins)."""
        return JSONResponse([mode_json(w) for w in book.snapshot()])

    async def add_mode(request: Request):
        """POST /v1/sim/modes {"facility_id", "mode", "start", "end"} → 201 and the window."""
        try:
            data = await request.json()
        except json.JSONDecodeError:
            raise BadRequest("expected a JSON object with facility_id, mode, start, end") from None
        if not isinstance(data, dict) or not {"facility_id", "mode", "start", "end"} <= set(data):
            raise BadRequest("expected a JSON object with facility_id, mode, start, end")
        if data["facility_id"] not in facility_ids:
            raise BadRequest(f"unknown facility_id {data['facility_id']!r}")
        if data["mode"] not in MODES:
            raise BadRequest(f"mode must be one of {', '.join(MODES)}, got {data['mode']!r}")
        start, end = parse_time(str(data["start"]), "start"), parse_time(str(data["end"]), "end")
        if end <= start:
            raise BadRequest(f"end ({iso(end)}) must be after start ({iso(start)})")
        window = ModeWindow(facility_id=data["facility_id"], mode=data["mode"], start=start, end=end)
        book.add(window)
        return JSONResponse(mode_json(window), status_code=201)

    return [
        Route("/v1/facilities", facilities),
        Route("/v1/meters", meters),
        Route("/v1/readings", readings),
        Route("/v1/sim/modes", list_modes, methods=["GET"]),
        Route("/v1/sim/modes", add_mode, methods=["POST"]),
    ]


def mode_json(window: ModeWindow) -> dict:
    return {"facility_id": window.facility_id, "mode": window.mode, "start": iso(window.start), "end": iso(window.end)}
