"""A building-management system for every simulated facility: it accepts the DR
dispatches Wattline sends, logs them, and its buildings then draw what the commands say
(the readings take each command's kW off its end use), so a DR event's performance can
be measured end to end.

`POST /v1/bms/dispatches` takes one facility's schedule:
`{"dispatch_id", "event_id", "version", "facility_id", "commands": [{"action_id",
"end_use", "phase", "start", "end", "kw"}]}`, `kw` > 0 shed, < 0 added. A later
dispatch for the same event and facility (a revised version, or a retry) replaces the
earlier one: the simulator holds the latest schedule of each event and facility.
`GET /v1/bms/dispatches` lists the dispatches in effect.
"""

import json
import logging
import math
import threading

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator.fleet import Fleet
from simulator.loadshapes import END_USES
from simulator.modes import LoadShift
from simulator.params import BadRequest, iso, parse_time

DISPATCH_PATH = "/v1/bms/dispatches"
MAX_COMMANDS = 5000
log = logging.getLogger("simulator.bms")


class CommandBook:
    """The dispatches in effect, by (event id, facility id), safe across request threads."""

    def __init__(self):
        self._dispatches: dict[tuple[str, str], dict] = {}
        self._shifts: dict[tuple[str, str], list[LoadShift]] = {}
        self._lock = threading.Lock()

    def put(self, dispatch: dict, shifts: list[LoadShift]) -> bool:
        """Store the facility's schedule for the event; False if this very dispatch was already in effect."""
        key = (dispatch["event_id"], dispatch["facility_id"])
        with self._lock:
            same = self._dispatches.get(key, {}).get("dispatch_id") == dispatch["dispatch_id"]
            self._dispatches[key] = dispatch
            self._shifts[key] = shifts
            return not same

    def shifts(self) -> list[LoadShift]:
        with self._lock:
            return [s for shifts in self._shifts.values() for s in shifts]

    def dispatches(self) -> list[dict]:
        with self._lock:
            return list(self._dispatches.values())


def routes(fleet: Fleet, book: CommandBook) -> list[Route]:
    facility_ids = {f.facility_id for f in fleet.facilities}

    async def add_dispatch(request: Request):
        try:
            data = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest("expected a JSON object: dispatch_id, event_id, version, facility_id, commands") from None
        if not isinstance(data, dict) or not {"dispatch_id", "event_id", "version", "facility_id", "commands"} <= set(data):
            raise BadRequest("expected a JSON object: dispatch_id, event_id, version, facility_id, commands")
        if data["facility_id"] not in facility_ids:
            raise BadRequest(f"unknown facility_id {str(data['facility_id'])[:40]!r}", status=422)
        commands = data["commands"]
        if not isinstance(commands, list) or len(commands) > MAX_COMMANDS:
            raise BadRequest(f"commands must be a list of at most {MAX_COMMANDS}", status=422)
        shifts = [_shift(data["facility_id"], command, index) for index, command in enumerate(commands)]
        new = book.put(data, shifts)
        log.info(
            "BMS %s dispatch %s: %s, %d commands, %.1f kWh shed",
            "accepted" if new else "re-received", data["dispatch_id"], data["facility_id"], len(shifts),
            sum(max(s.kw, 0.0) * (s.end - s.start).total_seconds() / 3600 for s in shifts),
        )
        return JSONResponse({"dispatch_id": data["dispatch_id"], "commands": len(shifts), "new": new}, status_code=202)

    async def list_dispatches(request: Request):
        return JSONResponse(book.dispatches())

    return [
        Route(DISPATCH_PATH, add_dispatch, methods=["POST"]),
        Route(DISPATCH_PATH, list_dispatches, methods=["GET"]),
    ]


def _shift(facility_id: str, command: object, index: int) -> LoadShift:
    where = f"commands[{index}]"
    if not isinstance(command, dict):
        raise BadRequest(f"{where} must be an object", status=422)
    end_use = command.get("end_use")
    if end_use not in (*END_USES, "battery"):
        raise BadRequest(f"{where}.end_use must be one of {', '.join((*END_USES, 'battery'))}", status=422)
    kw = command.get("kw")
    if isinstance(kw, bool) or not isinstance(kw, int | float) or not math.isfinite(kw):
        raise BadRequest(f"{where}.kw must be a number", status=422)
    start, end = parse_time(str(command.get("start")), f"{where}.start"), parse_time(str(command.get("end")), f"{where}.end")
    if end <= start:
        raise BadRequest(f"{where}: end ({iso(end)}) must be after start ({iso(start)})", status=422)
    return LoadShift(facility_id, end_use, start, end, float(kw))
