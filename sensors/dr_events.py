"""Demand-response events as the receiver accepts them: validated from a utility's
notification body, versioned, and stored in the durable inbox `ops.dr_events`."""

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# What an event may ask for; the receiver's two endpoints and `wattline simulate dr-event`
# apply these rules (check_window, check_kw_target), and README's webhook section lists them.
PLAN_INTERVAL = timedelta(minutes=15)  # the reduction plan's grain (marts.fct_dr_reduction_plan)
MIN_EVENT_DURATION = PLAN_INTERVAL  # a shorter event would be planned as a whole interval anyway
MAX_EVENT_DURATION = timedelta(hours=24)  # DR events last hours; a day-long plan is a mistake upstream
MAX_LEAD = timedelta(days=7)  # utilities call events a day ahead at most; a week covers test events
# A facility the registry gives no contract demand counts as this much (1 GW: more than
# any single site draws), so a kW target no portfolio could shed is still refused.
UNKNOWN_FACILITY_KW = 1_000_000.0
MAX_FACILITIES = 1000
MAX_ID_LENGTH = 200
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/@-]*")
MAX_UTC_OFFSET = timedelta(hours=14)  # Kiribati; PostgreSQL refuses offsets past 15:59
# An OpenADR notification nests about eight levels; a body nested far deeper is an attack
# on the stack (json.dumps recurses when the event is stored), not an event.
MAX_JSON_DEPTH = 64
# PostgreSQL's jsonb holds neither NUL nor a lone UTF-16 surrogate: the insert would fail.
UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class InvalidEvent(ValueError):
    """A notification the receiver refuses: `status` is the HTTP answer (400 for a body
    that is not JSON, 422 for one that is JSON but not a valid event)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


class EventOver(InvalidEvent):
    """An event whose window has ended: nothing to plan (and, for a DELETE, nothing to cancel)."""


@dataclass(frozen=True)
class DrEvent:
    event_id: str
    version: str
    source: str  # utility | openadr3
    facility_ids: tuple[str, ...]
    event_start: datetime
    event_end: datetime
    target_reduction_pct: float | None = None
    target_reduction_kw: float | None = None
    intervals: list[dict] | None = None
    payload: dict = field(default_factory=dict, compare=False)
    status: str = "received"  # or cancelled: an OpenADR DELETE


def parse_json(body: bytes) -> object:
    """The body's JSON value, refused (400) unless this receiver can read and store it."""

    def not_json(constant: str):
        raise InvalidEvent(f"body is not JSON: {constant} is not a JSON number", status=400)

    def finite(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise InvalidEvent(f"body is not JSON this receiver reads: {literal[:40]} is beyond a double", status=400)
        return value

    try:
        payload = json.loads(body, parse_constant=not_json, parse_float=finite)
    except InvalidEvent:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent(f"body is not JSON: {error}", status=400) from None
    except ValueError as error:
        # An integer of more digits than Python converts (sys.get_int_max_str_digits).
        raise InvalidEvent(f"body is not JSON this receiver reads: {error}", status=400) from None
    except RecursionError:
        raise InvalidEvent("body is not JSON this receiver reads: nested too deeply", status=400) from None
    _check_storable(payload)
    return payload


def _check_storable(payload: object) -> None:
    """Refuse what would fail later, in json.dumps or in PostgreSQL, as a 500: a body
    nested past MAX_JSON_DEPTH, or a string holding NUL or a lone surrogate."""
    pending = [(payload, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if UNSTORABLE_CHARACTER.search(value):
                raise InvalidEvent("body is not JSON this receiver reads: a string holds \\u0000 or a lone surrogate", status=400)
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidEvent(f"body is not JSON this receiver reads: nested more than {MAX_JSON_DEPTH} levels", status=400)
            children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)


def utility_event(body: bytes, now: datetime | None = None) -> DrEvent:
    """The event in a `POST /webhooks/utility/dr-notification` body:
    `{event_id, facility_ids[], event_start, event_end, target_reduction_percentage}` or
    `target_reduction_kw` instead of the percentage, and optionally `version`.

    Without a `version`, the version is a digest of the event's fields: a redelivery
    is the same version, a revision (new window, facilities or target) a new one. The
    window is judged as of `now` (default: the clock): see check_window.
    """
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise InvalidEvent(f"expected a JSON object, got {type(payload).__name__}")
    allowed = {"event_id", "facility_ids", "event_start", "event_end", "target_reduction_percentage", "target_reduction_kw", "version"}
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise InvalidEvent(f"unknown fields: {', '.join(unknown)}")
    event_id = identifier(payload.get("event_id"), "event_id")
    facility_ids = facility_list(payload.get("facility_ids"))
    start = timestamp(payload.get("event_start"), "event_start")
    end = timestamp(payload.get("event_end"), "event_end")
    check_window(start, end, now)
    pct, kw = payload.get("target_reduction_percentage"), payload.get("target_reduction_kw")
    if (pct is None) == (kw is None):
        raise InvalidEvent("give exactly one of target_reduction_percentage and target_reduction_kw")
    if pct is not None:
        pct = number(pct, "target_reduction_percentage")
        if not 0 < pct <= 100:
            raise InvalidEvent(f"target_reduction_percentage must be in (0, 100], got {pct:g}")
    if kw is not None:
        kw = number(kw, "target_reduction_kw")
        if kw <= 0:
            raise InvalidEvent(f"target_reduction_kw must be above 0, got {kw:g}")
        if kw > UNKNOWN_FACILITY_KW * len(facility_ids):
            # Before the registry is asked: no portfolio sheds this, whatever it holds.
            check_kw_target(kw, dict.fromkeys(facility_ids))
    version = payload.get("version")
    if version is None:
        canonical = json.dumps(
            [event_id, sorted(facility_ids), start.isoformat(), end.isoformat(), pct, kw], separators=(",", ":")
        )
        version = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
    else:
        version = identifier(str(version) if isinstance(version, int) and not isinstance(version, bool) else version, "version")
    return DrEvent(event_id, version, "utility", facility_ids, start, end, pct, kw, payload=payload)


def identifier(value: object, name: str) -> str:
    """Ids become Dagster partition keys and run keys: letters, digits and . _ : + / - @,
    starting with a letter or digit."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidEvent(f"{name} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidEvent(f"{name} is longer than {MAX_ID_LENGTH} characters")
    if not IDENTIFIER.fullmatch(value) or "..." in value:
        raise InvalidEvent(f"{name} may hold only letters, digits and . _ : + / - @ (starting with a letter or digit), got {value[:40]!r}")
    return value


def facility_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidEvent("facility_ids must be a non-empty list of facility ids")
    if len(value) > MAX_FACILITIES:
        raise InvalidEvent(f"facility_ids holds {len(value)} ids; at most {MAX_FACILITIES}")
    ids = [identifier(v, "each facility id") for v in value]
    if len(set(ids)) != len(ids):
        raise InvalidEvent("facility_ids repeats a facility")
    return tuple(ids)


def timestamp(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidEvent(f"{name} must be an ISO 8601 timestamp with a time zone, e.g. 2026-07-01T17:00:00Z")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"{name} is not an ISO 8601 timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise InvalidEvent(f"{name} has no time zone: {value[:40]!r} (add Z for UTC)")
    offset = parsed.utcoffset()
    if offset % timedelta(minutes=1) or abs(offset) > MAX_UTC_OFFSET:
        raise InvalidEvent(f"{name} has a UTC offset that is not whole minutes within ±14:00: {value[:40]!r}")
    try:
        parsed.astimezone(UTC)  # 0001-01-01T00:00+01:00 is a valid string but no datetime in UTC
    except OverflowError:
        raise InvalidEvent(f"{name} is outside the years 1–9999 in UTC: {value[:40]!r}") from None
    return parsed


def check_window(start: datetime, end: datetime, now: datetime | None = None) -> None:
    """An event's window is one a plan can serve: it ends after it starts, lasts from
    MIN_EVENT_DURATION to MAX_EVENT_DURATION, starts and ends on the plan's quarter hours
    (UTC), is not over by `now`, and starts at most MAX_LEAD after it. One that has begun
    and not ended is accepted: a utility may revise an event in progress."""
    now = now or datetime.now(UTC)
    if end <= start:
        raise InvalidEvent(f"event_end ({end.isoformat()}) is not after event_start ({start.isoformat()})")
    if end - start > MAX_EVENT_DURATION:
        raise InvalidEvent(f"the event lasts {end - start}; at most {MAX_EVENT_DURATION}")
    if end - start < MIN_EVENT_DURATION:
        raise InvalidEvent(f"the event lasts {end - start}; at least {MIN_EVENT_DURATION} (the plan's interval)")
    for name, moment in (("event_start", start), ("event_end", end)):
        if (moment.astimezone(UTC) - EPOCH) % PLAN_INTERVAL:
            raise InvalidEvent(
                f"{name} ({moment.isoformat()}) is not on a quarter hour: the plan's intervals start at :00, :15, :30 and :45 (UTC)"
            )
    if end <= now:
        raise EventOver(f"the event is over: it ended at {end.astimezone(UTC):%Y-%m-%d %H:%M} UTC, before now ({now:%Y-%m-%d %H:%M} UTC)")
    if start - now > MAX_LEAD:
        raise InvalidEvent(
            f"event_start ({start.astimezone(UTC):%Y-%m-%d %H:%M} UTC) is more than {MAX_LEAD.days} days ahead; "
            f"at most {(now + MAX_LEAD):%Y-%m-%d %H:%M} UTC"
        )


def check_kw_target(kw: float, contract_demand_kw: dict[str, float | None]) -> None:
    """A kW target the facilities can shed: at most the sum of their contract demands in
    the registry (UNKNOWN_FACILITY_KW for each without one)."""
    known = {f: d for f, d in contract_demand_kw.items() if d is not None and math.isfinite(d) and d > 0}
    capability = sum(known.values()) + UNKNOWN_FACILITY_KW * (len(contract_demand_kw) - len(known))
    if kw > capability:
        basis = (
            f"their contract demand sums to {capability:,.0f} kW" if len(known) == len(contract_demand_kw)
            else f"{capability:,.0f} kW, counting {UNKNOWN_FACILITY_KW:,.0f} kW for each without a contract demand"
        )
        raise InvalidEvent(f"target_reduction_kw {kw:,.6g} is more than the facilities can shed: {basis}")


def number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(f"{name} must be a number")
    try:
        converted = float(value)  # an integer of 400 digits is JSON, but no double
    except OverflowError:
        raise InvalidEvent(f"{name} must be a number a double holds, got one of {len(str(value))} digits") from None
    if not math.isfinite(converted):
        raise InvalidEvent(f"{name} must be a number")
    return converted
