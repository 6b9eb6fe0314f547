"""Types of the `wattline` command's arguments: each refuses what it cannot read with a
usage error (exit code 2) that names the option, before anything runs."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import click

from sensors.dr_events import IDENTIFIER, MAX_EVENT_DURATION, MAX_ID_LENGTH, MAX_LEAD, MIN_EVENT_DURATION, PLAN_INTERVAL

# +30m, +2h, +1.5h: a positive amount of minutes or hours from now.
RELATIVE = re.compile(r"\+(?P<amount>\d+(?:\.\d+)?)(?P<unit>[mh])")
# 60, 60m, 2h, 1.5h: minutes unless it says h.
LENGTH = re.compile(r"(?P<amount>\d+(?:\.\d+)?)(?P<unit>[mh]?)")
UNITS = {"m": timedelta(minutes=1), "": timedelta(minutes=1), "h": timedelta(hours=1)}


class EventStart(click.ParamType):
    """When a DR event starts: +Nm / +Nh from now (rounded up to a quarter hour) or an ISO
    8601 time with a time zone; in the future and at most MAX_LEAD ahead."""

    name = "start"

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        from simulator.utility import next_quarter_hour

        now = datetime.now(UTC)
        text = str(value).strip()
        if text.startswith("+"):
            match = RELATIVE.fullmatch(text)
            if match is None:
                self.fail(f"{value!r} is not +N minutes or hours from now, e.g. +30m or +2h", param, ctx)
            lead = float(match["amount"]) * UNITS[match["unit"]]
            if lead <= timedelta(0):
                self.fail(f"{value!r} is not ahead of now: give a positive amount, e.g. +30m", param, ctx)
            if lead > MAX_LEAD:
                self.fail(f"{value!r} is more than {MAX_LEAD.days} days ahead", param, ctx)
            return next_quarter_hour(now, lead)
        try:
            start = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is neither +N minutes/hours (+30m, +2h) nor an ISO 8601 time", param, ctx)
        if start.tzinfo is None:
            self.fail(f"{value!r} has no time zone (add Z for UTC, or +02:00)", param, ctx)
        if start <= now:
            self.fail(f"{value!r} is not in the future", param, ctx)
        if start - now > MAX_LEAD:
            self.fail(f"{value!r} is more than {MAX_LEAD.days} days ahead", param, ctx)
        return start


class EventDuration(click.ParamType):
    """How long a DR event lasts: minutes (60, 90m) or hours (2h, 1.5h), whole quarter
    hours from MIN_EVENT_DURATION to MAX_EVENT_DURATION."""

    name = "duration"

    def convert(self, value, param, ctx) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = LENGTH.fullmatch(str(value).strip())
        if match is None:
            self.fail(f"{value!r} is not a number of minutes (90, 90m) or hours (2h)", param, ctx)
        length = float(match["amount"]) * UNITS[match["unit"]]
        if not MIN_EVENT_DURATION <= length <= MAX_EVENT_DURATION:
            self.fail(f"{value!r}: an event lasts from {MIN_EVENT_DURATION} to {MAX_EVENT_DURATION}", param, ctx)
        if length % PLAN_INTERVAL:
            self.fail(f"{value!r} is not whole quarter hours (the plan's interval): 15, 30, 45, 60, …", param, ctx)
        return length


class Moment(click.ParamType):
    """An ISO 8601 date or time; without a time zone, UTC."""

    name = "time"

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or time, e.g. 2026-05-01 or 2026-05-01T06:00", param, ctx)
        try:
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except OverflowError:
            self.fail(f"{value!r} is outside the years 1–9999 in UTC", param, ctx)


class FiniteFloat(click.FloatRange):
    """click.FloatRange that also refuses nan and inf (which it lets through)."""

    def convert(self, value, param, ctx) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class Identifier(click.ParamType):
    """An id the receiver takes: letters, digits and . _ : + / - @, starting with a letter or digit."""

    name = "id"

    def convert(self, value, param, ctx) -> str:
        text = str(value)
        if len(text) > MAX_ID_LENGTH or not IDENTIFIER.fullmatch(text) or "..." in text:
            self.fail(
                f"{text[:40]!r} is not an id: up to {MAX_ID_LENGTH} letters, digits and . _ : + / - @, starting with a letter or digit",
                param, ctx,
            )
        return text


class IdList(Identifier):
    """Comma-separated ids, at least one, none repeated."""

    name = "ids"

    def convert(self, value, param, ctx) -> list[str]:
        if isinstance(value, list):
            return value
        ids = [part.strip() for part in str(value).split(",")]
        if not any(ids) or not all(ids):
            self.fail(f"{value!r} is not a comma-separated list of ids, e.g. FAC-0001,FAC-0002", param, ctx)
        ids = [super(IdList, self).convert(part, param, ctx) for part in ids]
        if len(set(ids)) != len(ids):
            self.fail(f"{value!r} repeats an id", param, ctx)
        return ids


class HttpUrl(click.ParamType):
    """An http(s):// URL with a host."""

    name = "url"

    def convert(self, value, param, ctx) -> str:
        parts = urlsplit(str(value))
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number in range
        except ValueError:
            self.fail(f"{value!r} has a bad port", param, ctx)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.fail(f"{value!r} is not an http(s):// URL, e.g. http://127.0.0.1:8787", param, ctx)
        return str(value).rstrip("/")


class Text(click.ParamType):
    """Non-blank text of at most `max_length` characters, without control characters."""

    name = "text"

    def __init__(self, max_length: int = 200):
        self.max_length = max_length

    def convert(self, value, param, ctx) -> str:
        text = str(value).strip()
        if not text:
            self.fail("must not be empty", param, ctx)
        if len(text) > self.max_length or not text.isprintable():
            self.fail(f"at most {self.max_length} printable characters", param, ctx)
        return text


EVENT_START = EventStart()
EVENT_DURATION = EventDuration()
MOMENT = Moment()
IDENTIFIER_PARAM = Identifier()
ID_LIST = IdList()
HTTP_URL = HttpUrl()
