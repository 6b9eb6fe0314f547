"""Query-parameter parsing shared by the simulator's APIs, and the error every bad
parameter becomes: a 400 whose JSON body says what was wrong."""

from datetime import UTC, datetime


class BadRequest(Exception):
    """A client error. `body` is the JSON returned: {"detail": ...} unless an API
    imitates another format (Open-Meteo's {"error": true, "reason": ...})."""

    def __init__(self, detail: str, body: dict | None = None, status: int = 400):
        super().__init__(detail)
        self.detail = detail
        self.body = body or {"detail": detail}
        self.status = status


def parse_time(value: str | None, name: str) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime (no offset = UTC)."""
    if not value:
        raise BadRequest(f"query parameter {name!r} is required (ISO 8601, e.g. 2026-01-05T10:00:00Z)")
    # An unencoded '+' of an offset arrives as a space.
    text = value.strip()
    if "T" in text:
        text = text.replace(" ", "+")
    text = text.replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} is not an ISO 8601 timestamp: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def time_window(start: str | None, end: str | None, max_days: int) -> tuple[datetime, datetime]:
    """[start, end) from two ISO 8601 parameters: end after start, at most max_days long."""
    first, last = parse_time(start, "start"), parse_time(end, "end")
    if last <= first:
        raise BadRequest(f"end ({iso(last)}) must be after start ({iso(first)})")
    if (last - first).total_seconds() > max_days * 86400:
        raise BadRequest(f"the window may span at most {max_days} days; page through longer ranges")
    return first, last


def iso(t: datetime) -> str:
    """ISO 8601 UTC to the second, with a Z."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(t: datetime) -> str:
    """ISO 8601 UTC to the millisecond, with a Z (Electricity Maps' style)."""
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)
