"""Fuzzing with hypothesis what Wattline takes in from outside: DR webhook bodies and
meter telemetry rows. The checks below run on generated inputs, not a few chosen by hand:

- No body crashes the event parsers. Each one gives back a DR event, or InvalidEvent
  with 400 or 422 and a reason. A valid event is read exactly as sent. An event broken
  in exactly one way is refused, and the reason names what is broken.
- Over HTTP, against the receiver on loopback: a signed valid event gets 202 and is
  stored once. An invalid body gets a 4xx with its reason and stores nothing. No OpenADR
  notification gets a 5xx: each one is answered as its parse says.
- No delivery of readings stops an hour's load. Every good row loads with its values,
  every bad row lands in raw.meter_readings_rejected with the rule it breaks (first
  match wins), and every row received ends up in exactly one of the two tables, once.
  Fields come quoted or not (RFC 4180: "" within quotes, commas within quotes), and a
  valid row loads the same on the fast path and on the slow one that a malformed line
  elsewhere in the delivery forces.

This module has a database of its own. Other modules' registry loads retire the
facilities they do not list, and these examples fill hours and meters that no other
test reads.
"""

import contextlib
import io
import itertools
import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests
import sqlalchemy as sa
from hypothesis import given, note, settings
from hypothesis import strategies as st

from resources.readings_loader import ReadingRules, load_hour
from resources.telemetry_api import READING_COLUMNS
from sensors.dr_events import MAX_EVENT_DURATION, MAX_LEAD, PLAN_INTERVAL, UNKNOWN_FACILITY_KW, InvalidEvent, utility_event
from sensors.openadr import SIMPLE_SHED_PCT, notification_event
from sensors.webhook_app import ReceiverConfig
from tests.conftest import own_warehouse
from tests.support import SECRET, quarter_hours_ahead, send, serve

# database=None: no example database written into the work tree.
PURE = settings(max_examples=200, deadline=None, database=None)
OVER_HTTP = settings(max_examples=40, deadline=None, database=None)
LOADS = settings(max_examples=30, deadline=None, database=None)

TOKEN = "vtn-" + uuid.uuid4().hex
OPENADR_PATH = "/webhooks/openadr3/notification"
FACILITIES = ("FZ-F1", "FZ-F2")
METERS = ("FZ-M1", "FZ-M2", "FZ-M3")


@pytest.fixture(scope="module")
def fuzz_database(pg_server):
    """A warehouse with two facilities and three meters; yields (database, engine)."""
    with own_warehouse(pg_server, "wattline_fuzz") as (database, engine):
        with engine.begin() as conn:
            for facility in FACILITIES:
                conn.execute(sa.text("insert into raw.facilities (facility_id, name, timezone) values (:f, :f, 'UTC')"), {"f": facility})
            for meter in METERS:
                conn.execute(sa.text("insert into raw.meters (meter_id, facility_id, interval_s) values (:m, 'FZ-F1', 60)"), {"m": meter})
        yield database, engine


@pytest.fixture(scope="module")
def receiver(fuzz_database):
    database, _ = fuzz_database
    yield from serve(ReceiverConfig(database.sqlalchemy_url, webhook_secret=SECRET, openadr_token=TOKEN))


# --- JSON, identifiers and timestamps -------------------------------------------------

# Text the receiver can store: no NUL, no lone surrogate (the parser refuses those, 400).
TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
    # Valid JSON that no double, or no PostgreSQL jsonb, holds.
    | st.sampled_from([10**400, -(10**400), 5e-324, 1.7976931348623157e308, -0.0, "\u0000", "\ud800", "a\udfffb"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
EDGE_BODIES = st.sampled_from([
    b"", b"1" * 5000, b"[" * 100_000, b'{"a": 1e999}', b'{"a": -1e400}', b"NaN", b'{"a": Infinity}',
    b"\xff\xfe{\x00}", "{}".encode("utf-16"), b'"\\ud800"', b"[" * 90 + b"]" * 90,
])
IDENTIFIERS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:+/@-]{0,39}", fullmatch=True).filter(lambda s: "..." not in s)
OFFSETS = st.integers(-12 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
MOMENTS = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31), timezones=OFFSETS)
# Where an event may start (sensors/dr_events.check_window): on a quarter hour, from an
# hour ahead to a day short of the week's horizon, so the module's run never outlives it.
FIRST_START = quarter_hours_ahead(4)
EVENT_STARTS = st.builds(
    lambda quarters, offset: (FIRST_START + quarters * PLAN_INTERVAL).astimezone(offset),
    st.integers(0, (MAX_LEAD - timedelta(days=1)) // PLAN_INTERVAL), OFFSETS,
)
EVENT_DURATIONS = st.integers(1, MAX_EVENT_DURATION // PLAN_INTERVAL).map(lambda quarters: quarters * PLAN_INTERVAL)
NON_STRINGS = (
    st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.booleans()
    | st.lists(st.integers(), max_size=2) | st.dictionaries(TEXT, st.integers(), max_size=2)
)
NON_NUMBERS = TEXT | st.booleans() | st.lists(st.integers(), max_size=2) | st.dictionaries(TEXT, st.integers(), max_size=2)
ALLOWED_CHARACTER = re.compile(r"[A-Za-z0-9._:+/@-]")
FORBIDDEN_CHARACTERS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00").filter(lambda c: not ALLOWED_CHARACTER.fullmatch(c))


def encoded(value) -> bytes:
    return json.dumps(value).encode()


def iso(moment: datetime, zulu: bool = False) -> str:
    text = moment.isoformat()
    return text[:-6] + "Z" if zulu and text.endswith("+00:00") else text


@st.composite
def bad_identifiers(draw) -> str:
    """An id that breaks the identifier rule: a forbidden character, a first character
    that is not a letter or digit, or three dots."""
    good = draw(IDENTIFIERS)
    kind = draw(st.sampled_from(["character", "first", "dots"]))
    if kind == "character":
        at = draw(st.integers(0, len(good)))
        return good[:at] + draw(FORBIDDEN_CHARACTERS) + good[at:]
    if kind == "first":
        return draw(st.sampled_from("._:+/@-")) + good
    return good + "..." + draw(IDENTIFIERS)


def outcome(parse, body: bytes):
    """What `parse` makes of `body`: its result, or the InvalidEvent it raised. Any other
    exception fails the test."""
    try:
        return parse(body)
    except InvalidEvent as refused:
        assert refused.status in (400, 422), refused.status
        assert str(refused).strip(), "a refusal without a reason"
        return refused


def paths(value, prefix=()):
    """Every node of a JSON value, as a path of keys and indexes (the root is ())."""
    yield prefix
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from paths(child, (*prefix, key))


def replaced(value, path, new):
    """A copy of `value` with the node at `path` replaced by `new`."""
    if not path:
        return new
    key, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, key: replaced(value[key], rest, new)}
    return [replaced(child, rest, new) if i == key else child for i, child in enumerate(value)]


# --- Utility events ---------------------------------------------------------------------

TARGETS = ("target_reduction_percentage", "target_reduction_kw")
ALLOWED_FIELDS = {"event_id", "facility_ids", "event_start", "event_end", *TARGETS, "version"}


@dataclass(frozen=True)
class Sent:
    """A generated event: the body and the window it stands for."""

    body: dict
    start: datetime
    end: datetime


@st.composite
def valid_events(draw, facility_ids=st.lists(IDENTIFIERS, min_size=1, max_size=5, unique=True)) -> Sent:
    start = draw(EVENT_STARTS)
    end = (start + draw(EVENT_DURATIONS)).astimezone(draw(OFFSETS))
    body = {
        "event_id": draw(IDENTIFIERS),
        "facility_ids": draw(facility_ids),
        "event_start": iso(start, draw(st.booleans())),
        "event_end": iso(end, draw(st.booleans())),
    }
    if draw(st.booleans()):
        body["target_reduction_percentage"] = draw(st.integers(1, 100) | st.floats(0, 100, exclude_min=True))
    else:
        # The generated facilities have no contract demand: each counts as UNKNOWN_FACILITY_KW.
        body["target_reduction_kw"] = draw(st.integers(1, 10**6) | st.floats(0, UNKNOWN_FACILITY_KW, exclude_min=True))
    version = draw(st.none() | IDENTIFIERS | st.integers(0, 10**18))
    if version is not None:
        body["version"] = version
    return Sent(body, start, end)


@dataclass(frozen=True)
class Broken:
    """A body broken in one way, and how the receiver must refuse it."""

    mutation: str
    raw: bytes
    status: int
    words: tuple[str, ...]  # each in the reason


DROP = object()


def _with(body: dict, **changes) -> dict:
    """The body with fields changed; a change to DROP removes the field."""
    return {k: v for k, v in {**body, **changes}.items() if v is not DROP}


def _timestamp_mutation(draw, sent: Sent, kind: str):
    field = draw(st.sampled_from(["event_start", "event_end"]))
    moment = sent.start if field == "event_start" else sent.end
    if kind == "missing":
        return _with(sent.body, **{field: DROP}), (f"{field} must be an ISO 8601 timestamp",)
    if kind == "not a string":
        return _with(sent.body, **{field: draw(NON_STRINGS | st.none())}), (f"{field} must be an ISO 8601 timestamp",)
    if kind == "unparsable":
        garbage = draw(st.sampled_from(["tomorrow", "2026-13-01T00:00:00Z", "2026-07-01T25:00:00Z", "17:00", ""]) | TEXT.filter(_not_iso))
        return _with(sent.body, **{field: garbage}), (f"{field} is not an ISO 8601 timestamp",)
    if kind == "naive":
        return _with(sent.body, **{field: moment.replace(tzinfo=None).isoformat()}), (f"{field} has no time zone",)
    # An offset no time zone has, and PostgreSQL does not store (same instant).
    minutes = draw(st.integers(14 * 60 + 1, 24 * 60 - 1)) * draw(st.sampled_from([1, -1]))
    return _with(sent.body, **{field: moment.astimezone(timezone(timedelta(minutes=minutes))).isoformat()}), (f"{field} has a UTC offset",)


def _not_iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return True
    return False


def _target_mutation(draw, sent: Sent, kind: str):
    body = _with(sent.body, **dict.fromkeys(TARGETS, DROP))
    if kind == "none":
        return body, ("exactly one of target_reduction_percentage and target_reduction_kw",)
    if kind == "both":
        return {**body, "target_reduction_percentage": 10, "target_reduction_kw": 5.5}, ("exactly one of",)
    if kind == "percentage out of range":
        pct = draw(st.integers(-(10**300), 0) | st.integers(101, 10**300) | st.floats(-1e308, 0) | st.floats(100, 1e308, exclude_min=True))
        return {**body, "target_reduction_percentage": pct}, ("target_reduction_percentage must be in (0, 100]",)
    if kind == "kw not above 0":
        return {**body, "target_reduction_kw": draw(st.integers(-(10**300), 0) | st.floats(-1e308, 0))}, ("target_reduction_kw must be above 0",)
    if kind == "kw beyond the facilities":
        capability = UNKNOWN_FACILITY_KW * len(body["facility_ids"])
        kw = draw(st.integers(int(capability) + 1, 10**300) | st.floats(capability, 1e308, exclude_min=True))
        return {**body, "target_reduction_kw": kw}, ("target_reduction_kw", "is more than the facilities can shed")
    field = draw(st.sampled_from(TARGETS))
    if kind == "not a number":
        return {**body, field: draw(NON_NUMBERS)}, (f"{field} must be a number",)
    # Valid JSON, but more than a double holds.
    return {**body, field: draw(st.integers(10**309, 10**4000))}, (f"{field} must be a number",)


def _window_mutation(draw, sent: Sent, kind: str):
    if kind == "end not after start":
        end = sent.start - draw(st.timedeltas(timedelta(0), timedelta(days=2)))
        return _with(sent.body, event_end=iso(end.astimezone(draw(OFFSETS)))), ("is not after event_start",)
    if kind == "shorter than the plan's interval":
        end = sent.start + draw(st.timedeltas(timedelta(microseconds=1), PLAN_INTERVAL - timedelta(microseconds=1)))
        return _with(sent.body, event_end=iso(end)), ("at least 0:15:00",)
    if kind == "off the quarter hour":
        field = draw(st.sampled_from(["event_start", "event_end"]))
        shift = draw(st.timedeltas(timedelta(microseconds=1), PLAN_INTERVAL - timedelta(microseconds=1)))
        if sent.end - sent.start == MAX_EVENT_DURATION:  # longer would break the longest-event rule first
            shift = -shift
        start, end = (sent.start - shift, sent.end) if field == "event_start" else (sent.start, sent.end + shift)
        return _with(sent.body, event_start=iso(start), event_end=iso(end)), (field, "is not on a quarter hour")
    if kind == "over":
        # The quarter hour the module started in, or one before it.
        end = FIRST_START - 4 * PLAN_INTERVAL - draw(st.integers(0, 4 * 24 * 365 * 30)) * PLAN_INTERVAL
        return _with(sent.body, event_start=iso(end - (sent.end - sent.start)), event_end=iso(end)), ("the event is over",)
    if kind == "too far ahead":
        start = FIRST_START + MAX_LEAD + draw(st.integers(0, 4 * 24 * 365 * 7000)) * PLAN_INTERVAL
        return _with(sent.body, event_start=iso(start), event_end=iso(start + (sent.end - sent.start))), ("is more than 7 days ahead",)
    end = sent.start + MAX_EVENT_DURATION + draw(st.timedeltas(timedelta(microseconds=1), timedelta(days=30)))
    return _with(sent.body, event_end=iso(end)), ("at most 1 day",)


def _identifier_mutation(draw, sent: Sent, kind: str):
    words = ("event_id must be a non-empty string",)
    if kind == "missing":
        return _with(sent.body, event_id=DROP), words
    if kind == "not a string":
        return _with(sent.body, event_id=draw(NON_STRINGS | st.none())), words
    if kind == "blank":
        return _with(sent.body, event_id=draw(st.text(" \t\r\n", max_size=4))), words
    if kind == "too long":
        return _with(sent.body, event_id="E" * 201), ("event_id is longer than 200 characters",)
    return _with(sent.body, event_id=draw(bad_identifiers())), ("event_id may hold only letters, digits",)


def _facility_mutation(draw, sent: Sent, kind: str):
    ids = list(sent.body["facility_ids"])
    at = draw(st.integers(0, len(ids) - 1))
    if kind == "missing":
        return _with(sent.body, facility_ids=DROP), ("facility_ids must be a non-empty list",)
    if kind == "not a list":
        facility_ids = draw(TEXT | st.integers() | st.dictionaries(TEXT, TEXT, max_size=2) | st.none() | st.just([]))
        return _with(sent.body, facility_ids=facility_ids), ("facility_ids must be a non-empty list",)
    if kind == "id not a string":
        ids[at] = draw(NON_STRINGS | st.none())
        return _with(sent.body, facility_ids=ids), ("each facility id must be a non-empty string",)
    if kind == "repeated":
        ids.insert(draw(st.integers(0, len(ids))), ids[at])
        return _with(sent.body, facility_ids=ids), ("facility_ids repeats a facility",)
    ids[at] = draw(bad_identifiers())
    return _with(sent.body, facility_ids=ids), ("each facility id may hold only letters, digits",)


def _other_mutation(draw, sent: Sent, kind: str):
    if kind == "unknown field":
        name = draw(TEXT.filter(lambda k: k and k not in ALLOWED_FIELDS))
        return {**sent.body, name: draw(st.integers() | TEXT)}, ("unknown fields", name)
    if kind == "version not a string":
        version = draw(
            st.floats(allow_nan=False, allow_infinity=False) | st.booleans() | st.lists(st.integers(), max_size=2)
            | st.dictionaries(TEXT, TEXT, max_size=1) | st.just("")
        )
        return _with(sent.body, version=version), ("version must be a non-empty string",)
    return _with(sent.body, version=draw(bad_identifiers() | st.integers(max_value=-1))), ("version may hold only letters, digits",)


MUTATIONS = {
    **{f"event_id {kind}": (_identifier_mutation, kind) for kind in ["missing", "not a string", "blank", "too long", "bad characters"]},
    **{f"facility_ids {kind}": (_facility_mutation, kind) for kind in ["missing", "not a list", "id not a string", "repeated", "bad characters"]},
    **{f"timestamp {kind}": (_timestamp_mutation, kind) for kind in ["missing", "not a string", "unparsable", "naive", "offset out of range"]},
    **{f"window {kind}": (_window_mutation, kind) for kind in [
        "end not after start", "longer than a day", "shorter than the plan's interval", "off the quarter hour", "over", "too far ahead",
    ]},
    **{f"target {kind}": (_target_mutation, kind) for kind in [
        "none", "both", "percentage out of range", "kw not above 0", "kw beyond the facilities", "not a number", "beyond a double",
    ]},
    **{kind: (_other_mutation, kind) for kind in ["unknown field", "version not a string", "version bad characters"]},
}


@st.composite
def broken_events(draw, facility_ids=st.lists(IDENTIFIERS, min_size=1, max_size=5, unique=True)) -> Broken:
    """A valid event with exactly one thing wrong; or a body that is no event at all."""
    sent = draw(valid_events(facility_ids))
    name = draw(st.sampled_from([*MUTATIONS, "not an object", "not JSON"]))
    if name == "not an object":
        value = draw(st.lists(st.integers(), max_size=3) | st.integers() | TEXT | st.none() | st.booleans())
        return Broken(name, encoded(value), 422, ("expected a JSON object",))
    if name == "not JSON":
        raw = encoded(sent.body)
        return Broken(name, draw(st.sampled_from([raw[:-1], raw + b"}", raw.replace(b'"', b"'"), b"event_id=1"])), 400, ("body is not JSON",))
    mutate, kind = MUTATIONS[name]
    body, words = mutate(draw, sent, kind)
    return Broken(name, encoded(body), 422, words)


@PURE
@given(st.binary(max_size=300) | JSON.map(encoded) | EDGE_BODIES)
def test_no_body_crashes_the_parsers(body):
    for parse in (utility_event, notification_event):
        outcome(parse, body)


@PURE
@given(sent=valid_events(), data=st.data())
def test_any_json_anywhere_in_a_utility_event_is_an_event_or_a_reason(sent, data):
    path = data.draw(st.sampled_from(list(paths(sent.body))), label="path")
    outcome(utility_event, encoded(replaced(sent.body, path, data.draw(JSON, label="value"))))


@PURE
@given(valid_events())
def test_a_valid_utility_event_is_read_as_sent(sent):
    body = sent.body
    event = utility_event(encoded(body))
    assert (event.event_id, event.facility_ids, event.source, event.status) == (body["event_id"], tuple(body["facility_ids"]), "utility", "received")
    assert event.event_start == sent.start and event.event_start.utcoffset() == sent.start.utcoffset()
    assert event.event_end == sent.end and event.event_end.utcoffset() == sent.end.utcoffset()
    assert event.target_reduction_pct == body.get("target_reduction_percentage")
    assert event.target_reduction_kw == body.get("target_reduction_kw")
    if "version" in body:
        assert event.version == str(body["version"])
    else:
        assert re.fullmatch(r"sha256:[0-9a-f]{16}", event.version)
    assert event.payload == body
    # A redelivery serialised another way (key order, whitespace) is the same version.
    assert utility_event(json.dumps(dict(reversed(body.items())), indent=2).encode()) == event


@PURE
@given(sent=valid_events(), change=st.sampled_from(["facilities", "window", "target"]), data=st.data())
def test_a_revision_is_a_new_version(sent, change, data):
    """Without a `version`, a change of facilities, window or target is a new version."""
    body = _with(sent.body, version=DROP)
    if change == "facilities":
        added = data.draw(IDENTIFIERS.filter(lambda f: f not in body["facility_ids"]), label="added facility")
        revised = {**body, "facility_ids": [*body["facility_ids"], added]}
    elif change == "window":
        step = -PLAN_INTERVAL if sent.end - sent.start > PLAN_INTERVAL else PLAN_INTERVAL
        revised = {**body, "event_end": iso(sent.end + step)}
    elif "target_reduction_percentage" in body:
        revised = {**body, "target_reduction_percentage": 60 if body["target_reduction_percentage"] == 50 else 50}
    else:
        revised = {**body, "target_reduction_kw": body["target_reduction_kw"] / 2 if body["target_reduction_kw"] > 1 else 2}
    assert utility_event(encoded(revised)).version != utility_event(encoded(body)).version


@PURE
@given(broken_events())
def test_a_utility_event_broken_one_way_is_refused_with_its_reason(broken):
    note(f"{broken.mutation}: {broken.raw[:300]!r}")
    with pytest.raises(InvalidEvent) as refused:
        utility_event(broken.raw)
    assert refused.value.status == broken.status
    for word in broken.words:
        assert word in str(refused.value)


# --- OpenADR notifications --------------------------------------------------------------


@dataclass(frozen=True)
class Notified:
    """A generated OpenADR notification and the DR event it stands for."""

    body: dict
    facility_ids: tuple[str, ...]
    start: datetime
    end: datetime
    targets: list[tuple]  # (shed_pct, import_limit_kw, price) per interval
    version: str | None  # from modificationDateTime; None: a digest


@st.composite
def notifications(draw, facility_ids=st.lists(IDENTIFIERS, min_size=1, max_size=4, unique=True)) -> Notified:
    ids = draw(facility_ids)
    if draw(st.booleans()):  # 3.1: target strings
        targets = list(ids)
    else:  # 3.0: RESOURCE_NAME targets, maybe beside a target type Wattline ignores
        targets = [{"type": "RESOURCE_NAME", "values": ids}, *draw(st.lists(st.just({"type": "ORGANIZATION_ID", "values": ["81"]}), max_size=1))]
    count = draw(st.integers(1, 6))
    minutes = 15 * draw(st.integers(1, 24 * 4 // count))
    start = draw(EVENT_STARTS)
    shared_period = draw(st.booleans())
    intervals, expected = [], []
    for index in range(count):
        if draw(st.booleans()):
            level = draw(st.integers(0, 3))
            payloads, target = [{"type": "SIMPLE", "values": [level]}], (SIMPLE_SHED_PCT[level], None)
        else:
            limit = draw(st.integers(0, 10**6) | st.floats(0, 1e9))
            payloads, target = [{"type": "IMPORT_CAPACITY_LIMIT", "values": [limit]}], (None, float(limit))
        price = draw(st.none() | st.floats(-1e4, 1e4))
        if price is not None:
            payloads.append({"type": "PRICE", "values": [price]})
        interval = {"id": index, "payloads": payloads}
        if not shared_period:
            interval["intervalPeriod"] = {"start": iso(start + index * timedelta(minutes=minutes)), "duration": f"PT{minutes}M"}
        intervals.append(interval)
        expected.append((*target, price))
    event = {"id": draw(IDENTIFIERS), "objectType": "EVENT", "programID": "1", "targets": targets, "intervals": intervals}
    if shared_period:
        event["intervalPeriod"] = {"start": iso(start, draw(st.booleans())), "duration": f"PT{minutes}M"}
    modified = draw(st.none() | MOMENTS)
    if modified is not None:
        event["modificationDateTime"] = iso(modified, draw(st.booleans()))
    operation = draw(st.sampled_from(["POST", "PUT", "CREATE", "UPDATE", "DELETE", "post", "Update"]))
    body = {"objectType": "EVENT", "operation": operation, "object": event}
    end = start + count * timedelta(minutes=minutes)
    return Notified(body, tuple(ids), start, end, expected, modified.isoformat() if modified is not None else None)


@PURE
@given(notifications())
def test_a_valid_openadr_event_is_read_as_sent(sent):
    event, action = notification_event(encoded(sent.body))
    deleted = sent.body["operation"].upper() == "DELETE"
    assert action == {"POST": "create", "CREATE": "create", "PUT": "update", "UPDATE": "update", "DELETE": "delete"}[sent.body["operation"].upper()]
    assert (event.event_id, event.facility_ids, event.source) == (sent.body["object"]["id"], sent.facility_ids, "openadr3")
    assert (event.event_start, event.event_end) == (sent.start, sent.end)
    assert [(i["shed_pct"], i["import_limit_kw"], i["price"]) for i in event.intervals] == sent.targets
    assert event.status == ("cancelled" if deleted else "received")
    version = event.version.removeprefix("deleted:") if deleted else event.version
    if sent.version is not None:
        assert version == sent.version
    else:
        assert re.fullmatch(r"sha256:[0-9a-f]{16}", version)


@PURE
@given(sent=notifications(), data=st.data())
def test_any_json_anywhere_in_a_notification_is_an_event_or_a_reason(sent, data):
    path = data.draw(st.sampled_from(list(paths(sent.body))), label="path")
    outcome(notification_event, encoded(replaced(sent.body, path, data.draw(JSON, label="value"))))


# --- Over HTTP --------------------------------------------------------------------------

REGISTERED = st.lists(st.sampled_from(FACILITIES), min_size=1, unique=True)


def inbox_size(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.text("select count(*) from ops.dr_events"))


def inbox_rows(engine, event_id: str, version: str | None = None) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "select * from ops.dr_events where event_id = :e and (cast(:v as text) is null or version = :v)"
        ), {"e": event_id, "v": version}).mappings().all()


def unique_id(value: str) -> str:
    """An event id no other example uses: the inbox is shared by every example."""
    return f"{value}-{uuid.uuid4().hex[:12]}"


@OVER_HTTP
@given(sent=valid_events(facility_ids=REGISTERED))
def test_a_signed_valid_event_is_202_and_stored_once(receiver, fuzz_database, sent):
    _, engine = fuzz_database
    body = {**sent.body, "event_id": unique_id(sent.body["event_id"])}
    response = send(receiver, body)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "accepted" and answer["event_id"] == body["event_id"]
    [row] = inbox_rows(engine, body["event_id"])
    assert row["version"] == answer["version"] and row["inbox_id"] == answer["inbox_id"]
    assert row["facility_ids"] == body["facility_ids"] and row["source"] == "utility" and row["status"] == "received"
    assert (row["event_start"], row["event_end"]) == (sent.start, sent.end)
    assert row["target_reduction_pct"] == body.get("target_reduction_percentage")
    assert row["target_reduction_kw"] == body.get("target_reduction_kw")
    # The body as sent; jsonb keeps numbers as decimals, so compare the targets as doubles.
    payload = row["payload"]
    assert _with(payload, **dict.fromkeys(TARGETS, DROP)) == _with(body, **dict.fromkeys(TARGETS, DROP))
    assert {t: float(payload[t]) for t in TARGETS if t in payload} == {t: float(body[t]) for t in TARGETS if t in body}


@st.composite
def unknown_facility_events(draw) -> Broken:
    sent = draw(valid_events(facility_ids=REGISTERED))
    stranger = draw(IDENTIFIERS.filter(lambda f: f not in FACILITIES))
    ids = [*sent.body["facility_ids"], stranger]
    return Broken("unknown facility", encoded({**sent.body, "facility_ids": ids}), 422, (f"unknown facility: {stranger}",))


@OVER_HTTP
@given(broken=broken_events(facility_ids=REGISTERED) | unknown_facility_events())
def test_a_signed_invalid_event_is_refused_with_its_reason_and_stores_nothing(receiver, fuzz_database, broken):
    _, engine = fuzz_database
    note(f"{broken.mutation}: {broken.raw[:300]!r}")
    before = inbox_size(engine)
    response = send(receiver, broken.raw)
    assert response.status_code == broken.status, response.text
    reason = response.json()["error"]
    for word in broken.words:
        assert word in reason
    assert inbox_size(engine) == before


@OVER_HTTP
@given(body=st.binary(max_size=300) | JSON.map(encoded) | EDGE_BODIES)
def test_a_signed_body_that_is_no_event_is_a_4xx_with_a_reason(receiver, fuzz_database, body):
    _, engine = fuzz_database
    before = inbox_size(engine)
    response = send(receiver, body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]
    assert inbox_size(engine) == before


@OVER_HTTP
@given(sent=notifications(facility_ids=REGISTERED), data=st.data())
def test_no_openadr_notification_makes_the_receiver_fail(receiver, fuzz_database, sent, data):
    """Valid notifications, and ones with any node replaced by any JSON: the receiver
    answers as the parser reads them (and the registry knows the facilities), never 5xx."""
    _, engine = fuzz_database
    body = replaced(sent.body, ("object", "id"), unique_id(sent.body["object"]["id"]))
    if data.draw(st.booleans(), label="replace a node"):
        path = data.draw(st.sampled_from(list(paths(body))), label="path")
        body = replaced(body, path, data.draw(JSON, label="value"))
    raw = encoded(body)
    expected = outcome(notification_event, raw)
    before = inbox_size(engine)
    response = requests.post(receiver + OPENADR_PATH, data=raw, timeout=10,
                             headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"})
    if isinstance(expected, InvalidEvent):
        assert (response.status_code, response.json()) == (expected.status, {"error": str(expected)})
        assert inbox_size(engine) == before
        return
    event, action = expected
    if event is None:
        assert (response.status_code, response.json()) == (200, {"status": "ignored", "reason": action})
        assert inbox_size(engine) == before
    elif set(event.facility_ids) <= set(FACILITIES):
        assert response.status_code == 202, response.text
        assert response.json()["operation"] == action
        [row] = inbox_rows(engine, event.event_id, event.version)
        assert row["facility_ids"] == list(event.facility_ids) and row["status"] == event.status
        assert (row["event_start"], row["event_end"]) == (event.event_start, event.event_end)
        assert inbox_size(engine) - before <= 1
    else:
        assert response.status_code == 422 and "unknown facility" in response.json()["error"]
        assert inbox_size(engine) == before


# --- Telemetry rows ---------------------------------------------------------------------

FIRST_HOUR = datetime(2025, 3, 3, tzinfo=UTC)
# Each example loads its own hour, three apart: rows outside its window go to the hours
# either side, which no example loads, so no example's rows meet another's.
HOUR_NUMBERS = itertools.count()
# The plain tests' hours, before the examples' (however many examples a search runs).
PLAIN_HOURS = (FIRST_HOUR - timedelta(hours=3 * n) for n in itertools.count(1))
NOW = datetime.now(UTC)
DOUBLES = ("energy_kwh", "active_power_kw", "reactive_power_kvar", "voltage_v", "current_a", "power_factor", "frequency_hz")
# The fields a reading cannot lack (missing_value when empty).
REQUIRED = ("ts", "meter_id", "facility_id", "interval_s", "energy_kwh")
SLOW_PATH_RULES = {"invalid_bytes", "malformed_row", "malformed_value"}


@dataclass(frozen=True)
class Row:
    """A reading as generated: its key, its values, how its timestamp is written, which
    fields are written in quotes, the text its energy_source starts with, and the one
    thing (if any) done to it to break a rule: (rule, column, what is written)."""

    meter: str
    second: int  # into the hour
    offset: timezone
    interval_s: int
    values: dict
    quoted: frozenset = frozenset()
    source: str = ""
    mutation: tuple | None = None


def quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def unquoted(written: str) -> str | None:
    """A field as written, read as COPY's CSV format reads it: empty and unquoted it is
    null; quoted, its text with each "" one quote."""
    if written == "":
        return None
    if len(written) >= 2 and written[0] == written[-1] == '"':
        return written[1:-1].replace('""', '"')
    return written


def quotable(texts):
    """Each text as is, or quoted (the same value, unless it is empty)."""
    return texts.flatmap(lambda text: st.sampled_from([text, quote(text)]) if text else st.just(text))


FINITE = st.floats(-1e6, 1e6)
# energy_source text that must be quoted (a comma, a quote, a carriage return) or that
# the slow path must stage unchanged (a tab, a backslash, "\.", any other character).
SOURCE_TEXT = st.lists(
    st.sampled_from([",", '"', '""', "\t", "\\", "\\.", "\r", " ", "grid,pv", "é"])
    | st.characters(exclude_categories=("Cs",), exclude_characters="\r\n\x00"),
    max_size=5,
).map("".join)
ROWS = st.builds(
    Row,
    meter=st.sampled_from(METERS),
    second=st.integers(0, 3599),
    offset=OFFSETS,
    interval_s=st.sampled_from([10, 60, 300, 900]),
    values=st.fixed_dictionaries({
        "energy_kwh": st.floats(0, 1e6),
        "active_power_kw": st.none() | FINITE,
        "reactive_power_kvar": st.none() | FINITE,
        "voltage_v": st.none() | st.floats(80, 600),
        "current_a": st.none() | st.floats(0, 1e5),
        "power_factor": st.none() | st.floats(0, 1),
        "frequency_hz": st.none() | st.floats(45, 65),
    }),
    quoted=st.frozensets(st.sampled_from(READING_COLUMNS)),
    source=SOURCE_TEXT,
)
# Text garbage: the typed COPY refuses the delivery, and the slow path judges each line.
GARBAGE = st.one_of(
    # A field too few (the column's left out) or one too many.
    st.tuples(st.just("malformed_row"), st.sampled_from([c for c in READING_COLUMNS if c != "energy_source"] + ["+field"]), st.just("")),
    # A quote that does not close on its line: a stray one, or a quoted line break's first half.
    st.tuples(st.just("malformed_row"), st.sampled_from(READING_COLUMNS), st.sampled_from(['"2.5', '2.5"', '"FZ-M1', 'gr"id', '"a""b', '"a,b'])),
    st.tuples(st.just("malformed_value"), st.sampled_from(DOUBLES), quotable(st.sampled_from(["lots", "1.2.3", "12kWh", "--1", "1e", "e5", "."]))),
    st.tuples(st.just("malformed_value"), st.just("ts"),
              quotable(st.sampled_from(["2025-13-03T10:00:00Z", "2025-03-32T10:00:00Z", "2025-03-03T10:61:00Z", "sometime", "10:15"]))),
    st.tuples(st.just("malformed_value"), st.just("interval_s"), quotable(st.sampled_from(["1.5", "99999999999", "sixty", "60s"]))),
    # A quoted "" is the empty string, which no number or timestamp is (unquoted, it is null).
    st.tuples(st.just("malformed_value"), st.sampled_from(["ts", "interval_s", *DOUBLES]), st.just('""')),
    # Bytes no text column holds: a NUL, or invalid UTF-8 (a surrogate escape stands for
    # the byte: delivered_body writes it as that byte).
    st.tuples(st.just("invalid_bytes"), st.sampled_from(READING_COLUMNS),
              quotable(st.sampled_from(["1.5\x00", "\x00", "gr\udcffid", "\udcc3", "FZ-M1\udcfe", "\udc80\udc80"]))),
)
# Values that parse but break a rule, quoted or not.
RULE_BREAKS = st.one_of(
    # Empty and unquoted: null. A text field quoted empty ("") is missing as well.
    st.tuples(st.just("missing_value"), st.sampled_from(REQUIRED), st.just("")),
    st.tuples(st.just("missing_value"), st.sampled_from(["meter_id", "facility_id"]), st.just('""')),
    st.tuples(st.just("not_a_number"), st.sampled_from(["energy_kwh", "active_power_kw", "power_factor", "voltage_v"]),
              quotable(st.sampled_from(["NaN", "nan", "Infinity", "-Infinity", "inf", "-inf"]))),
    st.tuples(st.just("negative_energy"), st.just("energy_kwh"), quotable(st.floats(-1e6, -1e-300).map(repr))),
    st.tuples(st.just("power_factor_out_of_range"), st.just("power_factor"),
              quotable((st.floats(1, 100, exclude_min=True) | st.floats(-100, -1e-300)).map(repr))),
    st.tuples(st.just("voltage_out_of_band"), st.just("voltage_v"),
              quotable((st.floats(-1e3, 80, exclude_max=True) | st.floats(600, 1e5, exclude_min=True)).map(repr))),
    st.tuples(st.just("future_timestamp"), st.just("ts"), st.integers(0, 3599)),
    st.tuples(st.just("outside_window"), st.just("ts"), st.integers(-3600, -1) | st.integers(3600, 7199)),
    st.tuples(st.just("unknown_meter"), st.just("meter_id"),
              quotable(st.sampled_from(["FZ-X1", "fz-m1", "FZ-M1 "])) | st.sampled_from([quote("FZ,M1"), quote('FZ-"M1"')])),
)


@dataclass(frozen=True)
class Delivery:
    rows: list[Row]
    columns: list[str]
    newline: str


def unique_keys(rows):
    return st.lists(rows, max_size=18, unique_by=lambda row: (row.meter, row.second))


@st.composite
def deliveries(draw) -> Delivery:
    """1–30 rows: good ones (unique keys), ones broken one way each, and repeats of good
    rows' keys with other values, in any order, under the columns in any order. About
    half the deliveries hold text garbage, so both load paths are exercised."""
    good = draw(unique_keys(ROWS))
    breaks = RULE_BREAKS | GARBAGE if draw(st.booleans()) else RULE_BREAKS
    broken = [replace(draw(ROWS), mutation=draw(breaks)) for _ in range(draw(st.integers(0 if good else 1, 9)))]
    repeats = [replace(draw(ROWS), meter=row.meter, second=row.second, mutation=("duplicate_key", "", ""))
               for row in (draw(st.lists(st.sampled_from(good), max_size=3)) if good else [])]
    rows = draw(st.permutations(good + broken + repeats))
    return Delivery(rows, draw(st.permutations(READING_COLUMNS)), draw(st.sampled_from(["\n", "\r\n"])))


def expected_rules(rows: list[Row]) -> list[str | None]:
    """The rule each row breaks (None: it loads). A repeated key is decided by delivery
    order among the rows no other rule rejects: the first loads, the later ones do not."""
    seen, rules = set(), []
    for row in rows:
        rule = row.mutation[0] if row.mutation and row.mutation[0] != "duplicate_key" else None
        if rule is None:
            key = (row.meter, row.second)
            rule = "duplicate_key" if key in seen else None
            seen.add(key)
        rules.append(rule)
    return rules


def rendered(row: Row, hour: datetime, tag: str) -> dict[str, str]:
    """The row's fields as written in the CSV: quoted when the row says so, or when the
    value holds a comma, a quote or a carriage return; never when empty (that would make
    a null the empty string). `tag`, last in energy_source, tells the rows apart in
    either table."""
    values = {
        "ts": (hour + timedelta(seconds=row.second)).astimezone(row.offset).isoformat(),
        "meter_id": row.meter, "facility_id": "FZ-F1", "interval_s": str(row.interval_s),
        **{name: "" if value is None else repr(value) for name, value in row.values.items()},
        "energy_source": row.source + tag,
    }
    rule, column, written = row.mutation or (None, None, None)
    if rule == "future_timestamp":
        values["ts"] = (NOW + timedelta(days=1) + (hour - FIRST_HOUR) + timedelta(seconds=written)).isoformat()
    elif rule == "outside_window":
        values["ts"] = (hour + timedelta(seconds=written)).isoformat()
    fields = {
        name: quote(value) if value and (name in row.quoted or any(c in value for c in ',"\r')) else value
        for name, value in values.items()
    }
    if rule not in (None, "duplicate_key", "future_timestamp", "outside_window") and column in fields and (rule != "malformed_row" or written):
        fields[column] = written  # as written: the mutation says whether it is quoted
    return fields


def csv_line(row: Row, fields: dict[str, str], columns: list[str]) -> str:
    rule, column, written = row.mutation or (None, None, None)
    if rule == "malformed_row" and not written:
        return ",".join(fields[c] for c in columns if c != column) + (",extra" if column == "+field" else "")
    return ",".join(fields[c] for c in columns)


def delivered_body(rows: list[Row], fields: list[dict[str, str]], columns: list[str], newline: str) -> bytes:
    lines = [",".join(columns), *(csv_line(row, f, columns) for row, f in zip(rows, fields, strict=True))]
    return (newline.join(lines) + newline).encode("utf-8", "surrogateescape")


def written_out(text: str) -> str:
    """Text as the quarantine keeps it: the bytes no text column holds as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def load(engine, body: bytes, hour: datetime):
    """Load `body` as the hour; returns the HourLoad, the rows loaded by energy_source,
    and the rows quarantined."""
    result = load_hour(engine, lambda: contextlib.nullcontext(io.BytesIO(body)), hour, ReadingRules())
    with engine.connect() as conn:
        loaded = {row["energy_source"]: row for row in conn.execute(sa.text(
            "select * from raw.meter_readings where ts >= :s and ts < :e"), {"s": hour, "e": hour + timedelta(hours=1)}).mappings()}
        rejected = conn.execute(sa.text(
            "select * from raw.meter_readings_rejected where window_start = :s"), {"s": hour}).mappings().all()
    return result, loaded, rejected


def assert_loaded_as_generated(stored, row: Row, hour: datetime) -> None:
    assert (stored["meter_id"], stored["facility_id"], stored["interval_s"]) == (row.meter, "FZ-F1", row.interval_s)
    assert stored["ts"] == hour + timedelta(seconds=row.second)
    assert {name: stored[name] for name in DOUBLES} == row.values


@LOADS
@given(delivery=deliveries())
def test_no_delivery_stops_the_load_and_every_row_lands_once(fuzz_database, delivery):
    _, engine = fuzz_database
    number = next(HOUR_NUMBERS)
    hour = FIRST_HOUR + timedelta(hours=3 * number)
    fields = [rendered(row, hour, f"grid-{number}-{i}") for i, row in enumerate(delivery.rows)]
    rules = expected_rules(delivery.rows)
    body = delivered_body(delivery.rows, fields, delivery.columns, delivery.newline)
    note(body.decode("utf-8", "backslashreplace"))

    result, loaded, rejected = load(engine, body, hour)

    assert result.received == len(delivery.rows) == result.loaded + result.rejected_total
    assert result.loaded == rules.count(None)
    assert result.rejected == Counter(rule for rule in rules if rule)
    assert result.slow_path == any(rule in SLOW_PATH_RULES for rule in rules)
    good = {unquoted(f["energy_source"]): row for row, f, rule in zip(delivery.rows, fields, rules, strict=True) if rule is None}
    assert loaded.keys() == good.keys()
    for tag, row in good.items():
        assert_loaded_as_generated(loaded[tag], row, hour)

    # Lines the slow path quarantines as text carry their line number; the rest their tag.
    landed = {
        (quarantined["line"] - 1 if quarantined["line"] is not None else int(quarantined["energy_source"].rsplit("-", 1)[1])): quarantined
        for quarantined in rejected
    }
    assert len(landed) == len(rejected), "a rejected row stored twice"
    assert {i: q["reason"] for i, q in landed.items()} == {i: rule for i, rule in enumerate(rules) if rule}
    for i, quarantined in landed.items():
        rule, column, written = delivery.rows[i].mutation or (None, None, None)
        if rule == "malformed_value":
            assert quarantined[column] == unquoted(written)  # the values as delivered
        elif rule == "invalid_bytes":
            assert quarantined[column] == written_out(unquoted(written))
        elif rule != "malformed_row":
            assert quarantined["meter_id"] == unquoted(fields[i]["meter_id"])


@LOADS
@given(
    rows=unique_keys(ROWS).filter(bool),
    columns=st.permutations(READING_COLUMNS),
    newline=st.sampled_from(["\n", "\r\n"]),
    malformed=ROWS.flatmap(lambda row: GARBAGE.map(lambda garbage: replace(row, mutation=garbage))),
    at=st.integers(0, 18),
)
def test_valid_rows_load_the_same_with_or_without_a_malformed_line(fuzz_database, rows, columns, newline, malformed, at):
    """The same valid rows, fields quoted or not, delivered alone (the fast typed COPY)
    and with one malformed line among them (the slow path for the whole delivery): every
    one loads, with the same values, either way."""
    _, engine = fuzz_database
    stored = []
    for with_malformed in (False, True):
        number = next(HOUR_NUMBERS)
        hour = FIRST_HOUR + timedelta(hours=3 * number)
        # The malformed line's tag is the example's own: raw.meter_readings_rejected keeps
        # a line once, whichever hour delivers it.
        tagged = [(row, f"quoted-{i}") for i, row in enumerate(rows)]
        if with_malformed:
            tagged.insert(at, (malformed, f"malformed-{number}"))
        delivered = [row for row, _ in tagged]
        fields = [rendered(row, hour, tag) for row, tag in tagged]
        body = delivered_body(delivered, fields, columns, newline)
        note(body.decode("utf-8", "backslashreplace"))

        result, loaded, rejected = load(engine, body, hour)

        assert result.slow_path == with_malformed
        assert (result.received, result.loaded) == (len(delivered), len(rows))
        assert result.rejected == ({malformed.mutation[0]: 1} if with_malformed else {})
        assert [(q["reason"], q["line"]) for q in rejected] == ([(malformed.mutation[0], min(at, len(rows)) + 1)] if with_malformed else [])
        assert loaded.keys() == {row.source + f"quoted-{i}" for i, row in enumerate(rows)}
        for i, row in enumerate(rows):
            assert_loaded_as_generated(loaded[row.source + f"quoted-{i}"], row, hour)
        stored.append({tag: {**row, "ts": row["ts"] - hour, "_loaded_at": None} for tag, row in loaded.items()})
    assert stored[0] == stored[1]


# Any text at all, in CSV terms: quotes anywhere (COPY takes "a"b and a"b"c), commas,
# doubled quotes, lone carriage returns, tabs and backslashes.
ODD_TEXT = st.lists(st.sampled_from(["a", "b", ",", '"', '""', " ", "\t", "\\", "\r", "é"]), max_size=8).map("".join)


@LOADS
@given(text=ODD_TEXT, newline=st.sampled_from(["\n", "\r\n"]))
def test_a_line_reads_the_same_on_both_paths_whatever_its_quotes(fuzz_database, text, newline):
    """energy_source written as any text: the slow path reads the line exactly as COPY's
    CSV format does, quotes in mid-field included, so the row loads with the same value
    on both paths, or is malformed_row on both."""
    _, engine = fuzz_database
    outcomes = []
    for with_malformed in (False, True):
        number = next(HOUR_NUMBERS)
        hour = FIRST_HOUR + timedelta(hours=3 * number)
        lines = [",".join(READING_COLUMNS), f"{hour.isoformat()},FZ-M1,FZ-F1,60,1.5,,,,,,,{text}"]
        if with_malformed:
            lines.append(f"{hour.isoformat()},FZ-M2,FZ-F1,60,lots,,,,,,,malformed-{number}")
        body = (newline.join(lines) + newline).encode()
        note(repr(body))

        result, loaded, _ = load(engine, body, hour)

        assert result.slow_path or not with_malformed
        outcomes.append((sorted(loaded), {rule: n for rule, n in result.rejected.items() if rule != "malformed_value"}))
    assert outcomes[0] == outcomes[1]


def test_a_quoted_line_break_is_malformed_row_on_either_path(fuzz_database):
    """A quoted field holding a line break is valid RFC 4180 but not taken (the head-end
    never sends one): lines are judged one by one, so the lines it spans are malformed_row,
    and the rows around it load. The typed COPY would read it as one record: the load
    notices that it read fewer rows than lines and takes the slow path."""
    _, engine = fuzz_database
    hour = next(PLAIN_HOURS)
    at = lambda second: (hour + timedelta(seconds=second)).isoformat()  # noqa: E731
    body = "\n".join([
        ",".join(READING_COLUMNS),
        f"{at(0)},FZ-M1,FZ-F1,60,1.5,,,230.0,,0.9,50.0,grid",
        f'{at(60)},FZ-M1,FZ-F1,60,1.5,,,230.0,,0.9,50.0,"grid',
        'and more"',
        # A carriage return within quotes is no line break: data.
        f'{at(120)},FZ-M1,FZ-F1,60,1.5,,,230.0,,0.9,50.0,"grid\rpv"',
        "",
    ]).encode()

    result, loaded, rejected = load(engine, body, hour)

    assert (result.slow_path, result.received, result.loaded, result.rejected) == (True, 4, 2, {"malformed_row": 2})
    assert sorted(loaded) == ["grid", "grid\rpv"]
    assert sorted((q["line"], q["reason"]) for q in rejected) == [(2, "malformed_row"), (3, "malformed_row")]


def test_a_line_copy_reads_as_the_end_of_data_does_not_cut_the_delivery_short(fuzz_database):
    r"""COPY stops at a line `\.`, silently: the load notices it read fewer rows than lines,
    and the slow path quarantines that line and loads the rest."""
    _, engine = fuzz_database
    hour = next(PLAIN_HOURS)
    at = lambda second: (hour + timedelta(seconds=second)).isoformat()  # noqa: E731
    lines = [",".join(READING_COLUMNS), f"{at(0)},FZ-M1,FZ-F1,60,1.5,,,,,,,before", "\\.", f"{at(60)},FZ-M1,FZ-F1,60,1.5,,,,,,,after"]
    body = ("\r\n".join(lines) + "\r\n").encode()

    result, loaded, rejected = load(engine, body, hour)

    assert (result.slow_path, result.received, result.loaded, result.rejected) == (True, 3, 2, {"malformed_row": 1})
    assert sorted(loaded) == ["after", "before"]
    assert [(q["line"], q["reason"]) for q in rejected] == [(2, "malformed_row")]
