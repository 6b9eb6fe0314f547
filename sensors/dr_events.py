"""Demand-response events as the receiver accepts them: validated from a utility's
notification body, versioned, and stored in the durable inbox `ops.dr_events`."""

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

MAX_EVENT_DURATION = timedelta(hours=24)  # DR events last hours; a day-long plan is a mistake upstream
MAX_FACILITIES = 1000
MAX_ID_LENGTH = 200
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/@-]*")


class InvalidEvent(ValueError):
    """A notification the receiver refuses: `status` is the HTTP answer (400 for a body
    that is not JSON, 422 for one that is JSON but not a valid event)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


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
    def not_json(constant: str):
        raise InvalidEvent(f"body is not JSON: {constant} is not a JSON number", status=400)

    try:
        return json.loads(body, parse_constant=not_json)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent(f"body is not JSON: {error}", status=400) from None
    except RecursionError:
        raise InvalidEvent("body is not JSON this receiver reads: nested too deeply", status=400) from None


def utility_event(body: bytes) -> DrEvent:
    """The event in a `POST /webhooks/utility/dr-notification` body:
    `{event_id, facility_ids[], event_start, event_end, target_reduction_percentage}` or
    `target_reduction_kw` instead of the percentage, and optionally `version`.

    Without a `version`, the version is a digest of the event's fields: a redelivery
    is the same version, a revision (new window, facilities or target) a new one.
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
    check_window(start, end)
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
    return parsed


def check_window(start: datetime, end: datetime) -> None:
    if end <= start:
        raise InvalidEvent(f"event_end ({end.isoformat()}) is not after event_start ({start.isoformat()})")
    if end - start > MAX_EVENT_DURATION:
        raise InvalidEvent(f"the event lasts {end - start}; at most {MAX_EVENT_DURATION}")


def number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidEvent(f"{name} must be a number")
    return float(value)
