"""OpenADR 3.0/3.1 notifications as the receiver reads them: a VTN's
`{objectType, operation, object}` where an EVENT object becomes a DR event.

How an EVENT maps onto Wattline:

- **Facilities**: the event's `targets`. In 3.0 they are `{type, values}` maps: the
  values of `RESOURCE_NAME` targets are facility ids (Wattline registers each facility
  with the VTN as a resource named by its id); other target types (groups, programs,
  organisations) are ignored. In 3.1 targets are plain strings, each a facility id. A
  target that is not a known, active facility is refused (422), as on the utility
  endpoint.
- **Window**: each interval's `intervalPeriod` (start + ISO 8601 duration), or the
  event's, the intervals then following one another in list order. The event runs from
  the first interval's start to the last one's end.
- **Targets per interval**, from the payloads:
  - `SIMPLE` level 0–3: shed 0, 10, 20 or 30 % of the facility's baseline (0 is
    normal operation; 1–3 moderate, high and special, the spec's example mapping
    with Wattline's percentages);
  - `IMPORT_CAPACITY_LIMIT`: the grid import the facility must stay under, kW;
  - `PRICE`: the price of the interval (kept for the plan's cost view; no shed by itself).
  Other payload types are kept in the stored object and otherwise ignored.
- **Version**: `modificationDateTime` (else a digest of the object): a VTN that
  redelivers an event changes nothing, one that modifies it makes a new version.
- **Operations**: POST/CREATE and PUT/UPDATE store the event; DELETE stores a
  `cancelled` version; GET/READ and any object that is not an EVENT are acknowledged
  and ignored.
"""

import hashlib
import json
from dataclasses import replace
from datetime import datetime, timedelta

from sensors.dr_events import (
    MAX_EVENT_DURATION,
    DrEvent,
    EventOver,
    InvalidEvent,
    check_window,
    identifier,
    number,
    parse_json,
    timestamp,
)

OPERATIONS = {
    "POST": "create", "CREATE": "create",
    "PUT": "update", "UPDATE": "update",
    "DELETE": "delete",
    "GET": "read", "READ": "read",
}
SIMPLE_SHED_PCT = {0: 0.0, 1: 10.0, 2: 20.0, 3: 30.0}
MAX_INTERVALS = 10_000


def notification_event(body: bytes, now: datetime | None = None) -> tuple[DrEvent | None, str]:
    """The DR event a notification carries, or None and why it is ignored. The window is
    judged as of `now` by the utility endpoint's rules (sensors.dr_events.check_window);
    the DELETE of an event that is over is acknowledged and ignored."""
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise InvalidEvent(f"expected a JSON object, got {type(payload).__name__}")
    object_type = payload.get("objectType")
    if not isinstance(object_type, str):
        raise InvalidEvent("objectType must be a string (EVENT, PROGRAM, REPORT, …)")
    operation = payload.get("operation")
    if not isinstance(operation, str) or operation.upper() not in OPERATIONS:
        raise InvalidEvent(f"operation must be one of {', '.join(OPERATIONS)}, got {str(operation)[:20]!r}")
    action = OPERATIONS[operation.upper()]
    if object_type.upper() != "EVENT":
        return None, f"objectType {object_type[:40]} is not a DR event"
    if action == "read":
        return None, f"operation {operation} changes no event"
    event = payload.get("object")
    if not isinstance(event, dict):
        raise InvalidEvent("object must be the EVENT object")
    try:
        parsed = _event(event, now)
    except EventOver as over:
        if action == "delete":
            return None, f"operation {operation} cancels nothing: {over}"
        raise
    if action == "delete":
        parsed = replace(parsed, version=f"deleted:{parsed.version}", status="cancelled")
    return parsed, action


def _event(event: dict, now: datetime | None) -> DrEvent:
    event_id = identifier(event.get("id"), "object.id")
    facility_ids = _targets(event.get("targets"))
    intervals = _intervals(event)
    start = min(i["start"] for i in intervals)
    end = max(i["end"] for i in intervals)
    check_window(start, end, now)
    modified = event.get("modificationDateTime")
    if modified is not None:
        version = timestamp(modified, "object.modificationDateTime").isoformat()
    else:
        version = "sha256:" + hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()[:16]
    stored = [{**i, "start": i["start"].isoformat(), "end": i["end"].isoformat()} for i in intervals]
    return DrEvent(event_id, version, "openadr3", facility_ids, start, end, intervals=stored, payload=event)


def _targets(targets: object) -> tuple[str, ...]:
    if not isinstance(targets, list) or not targets:
        raise InvalidEvent("object.targets must name the facilities (RESOURCE_NAME targets, or target strings in 3.1)")
    names: list[str] = []
    for target in targets:
        if isinstance(target, str):
            names.append(identifier(target, "each target"))
        elif isinstance(target, dict):
            if target.get("type") != "RESOURCE_NAME":
                continue
            values = target.get("values")
            if not isinstance(values, list):
                raise InvalidEvent("a RESOURCE_NAME target's values must be a list of facility ids")
            names += [identifier(v, "each RESOURCE_NAME value") for v in values]
        else:
            raise InvalidEvent("each target must be a string or a {type, values} object")
    if not names:
        raise InvalidEvent("no target names a facility: give RESOURCE_NAME targets whose values are facility ids")
    return tuple(dict.fromkeys(names))


def _intervals(event: dict) -> list[dict]:
    intervals = event.get("intervals")
    if not isinstance(intervals, list) or not intervals:
        raise InvalidEvent("object.intervals must be a non-empty list")
    if len(intervals) > MAX_INTERVALS:
        raise InvalidEvent(f"object.intervals holds {len(intervals)} intervals; at most {MAX_INTERVALS}")
    default = event.get("intervalPeriod")
    parsed = []
    for index, interval in enumerate(intervals):
        if not isinstance(interval, dict):
            raise InvalidEvent(f"intervals[{index}] must be an object")
        own = interval.get("intervalPeriod")
        try:
            if own is not None:
                start, duration = _period(own, f"intervals[{index}].intervalPeriod")
            elif default is not None:
                first, duration = _period(default, "object.intervalPeriod")
                start = first + index * duration
            else:
                raise InvalidEvent(f"intervals[{index}] has no intervalPeriod and the event gives none")
            end = start + duration
        except OverflowError:
            raise InvalidEvent(f"intervals[{index}] ends past the year 9999") from None
        parsed.append({"id": interval.get("id", index), "start": start, "end": end, **_payloads(interval, index)})
    return parsed


def _period(period: object, name: str):
    if not isinstance(period, dict):
        raise InvalidEvent(f"{name} must be an object with start and duration")
    start = timestamp(period.get("start"), f"{name}.start")
    duration = period.get("duration")
    if not isinstance(duration, str):
        raise InvalidEvent(f"{name}.duration must be an ISO 8601 duration such as PT1H")
    import isodate

    try:
        parsed = isodate.parse_duration(duration)
    except (isodate.ISO8601Error, ValueError):
        raise InvalidEvent(f"{name}.duration is not an ISO 8601 duration: {duration[:40]!r}") from None
    except OverflowError:  # PT99999999999999H: past what a timedelta holds
        raise InvalidEvent(f"{name}.duration {duration[:40]} is beyond any calendar; DR events last at most {MAX_EVENT_DURATION}") from None
    if not isinstance(parsed, timedelta):
        # Years or months: P9999Y is OpenADR's "until further notice", never a DR window.
        raise InvalidEvent(f"{name}.duration {duration[:40]} is open-ended or in months/years; DR events last at most {MAX_EVENT_DURATION}")
    if parsed <= timedelta(0):
        raise InvalidEvent(f"{name}.duration must be positive, got {duration[:40]}")
    return start, parsed


def _payloads(interval: dict, index: int) -> dict:
    payloads = interval.get("payloads")
    if not isinstance(payloads, list) or not payloads:
        raise InvalidEvent(f"intervals[{index}].payloads must be a non-empty list")
    targets = {"shed_pct": None, "import_limit_kw": None, "price": None}
    for payload in payloads:
        if not isinstance(payload, dict) or not isinstance(payload.get("values"), list) or not payload["values"]:
            raise InvalidEvent(f"intervals[{index}]: each payload needs a type and a non-empty values list")
        kind, value = payload.get("type"), payload["values"][0]
        if kind == "SIMPLE":
            if isinstance(value, bool) or not isinstance(value, int | float) or value not in SIMPLE_SHED_PCT:
                raise InvalidEvent(f"intervals[{index}]: a SIMPLE level is 0, 1, 2 or 3, got {str(value)[:20]}")
            targets["shed_pct"] = SIMPLE_SHED_PCT[int(value)]
        elif kind == "IMPORT_CAPACITY_LIMIT":
            limit = number(value, f"intervals[{index}] IMPORT_CAPACITY_LIMIT")
            if limit < 0:
                raise InvalidEvent(f"intervals[{index}]: IMPORT_CAPACITY_LIMIT must be 0 kW or more, got {limit:g}")
            targets["import_limit_kw"] = limit
        elif kind == "PRICE":
            targets["price"] = number(value, f"intervals[{index}] PRICE")
    return targets
