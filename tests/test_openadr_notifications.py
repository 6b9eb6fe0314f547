"""OpenADR 3 notifications at the receiver, over HTTP on loopback: SIMPLE and
import-capacity-limit events in the 3.0 and 3.1 shapes become stored DR events with
their intervals; redeliveries, modifications and deletions are versions; other objects
are acknowledged and ignored; a missing or wrong bearer token stores nothing."""

import copy
import uuid
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from sensors.webhook_app import ReceiverConfig
from tests.support import iso, quarter_hours_ahead, serve, stored

TOKEN = "vtn-" + uuid.uuid4().hex
PATH = "/webhooks/openadr3/notification"

START = quarter_hours_ahead(8)  # two hours ahead: valid for the whole module's run
HOUR = timedelta(hours=1)

# An OpenADR 3.0 event as a VTN sends it (the shape of the spec's examples): resource
# targets, a default interval period and SIMPLE levels.
SIMPLE_EVENT = {
    "id": "oadr-simple",
    "createdDateTime": "2026-07-01T09:00:00.000Z",
    "modificationDateTime": "2026-07-01T09:00:00.000Z",
    "objectType": "EVENT",
    "programID": "1",
    "eventName": "peak-shave",
    "priority": 0,
    "targets": [
        {"type": "RESOURCE_NAME", "values": ["OA-F1", "OA-F2"]},
        {"type": "ORGANIZATION_ID", "values": ["81"]},
    ],
    "payloadDescriptors": [{"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "SIMPLE"}],
    "intervalPeriod": {"start": iso(START), "duration": "PT1H", "randomizeStart": "PT0S"},
    "intervals": [
        {"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]},
        {"id": 1, "payloads": [{"type": "SIMPLE", "values": [3]}, {"type": "PRICE", "values": [0.42]}]},
    ],
}
# 3.1: targets are plain strings; each interval has its own period.
CAPACITY_EVENT = {
    "id": "oadr-capacity",
    "modificationDateTime": "2026-07-02T08:00:00Z",
    "objectType": "EVENT",
    "programID": "2",
    "targets": ["OA-F1"],
    "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}],
    "intervals": [
        {"id": 0, "intervalPeriod": {"start": iso(START + 24 * HOUR), "duration": "PT30M"},
         "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [30]}]},
        {"id": 1, "intervalPeriod": {"start": iso(START + 24 * HOUR + HOUR / 2), "duration": "PT30M"},
         "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [25.5]}]},
    ],
}


@pytest.fixture(scope="module")
def vtn_receiver(warehouse, engine):
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into raw.facilities (facility_id, name, timezone, active) values "
            "('OA-F1', 'OpenADR one', 'America/Los_Angeles', true), ('OA-F2', 'OpenADR two', 'America/Los_Angeles', true) "
            "on conflict (facility_id) do nothing"
        ))
    yield from serve(ReceiverConfig(warehouse.sqlalchemy_url, webhook_secret=None, openadr_token=TOKEN))


def notify(url, event, operation="POST", object_type="EVENT", token=TOKEN):
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    body = {"objectType": object_type, "operation": operation, "object": event}
    return requests.post(url + PATH, json=body, headers=headers, timeout=10)


def unique(event: dict) -> dict:
    """The event under an id of its own: the module's tests share the inbox."""
    return {**copy.deepcopy(event), "id": f"{event['id']}-{uuid.uuid4().hex[:6]}"}


def test_a_simple_event_becomes_a_dr_event_with_shed_levels(vtn_receiver, engine):
    event = unique(SIMPLE_EVENT)
    response = notify(vtn_receiver, event)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted" and response.json()["operation"] == "create"
    [row] = stored(engine, event["id"])
    assert row["source"] == "openadr3" and row["facility_ids"] == ["OA-F1", "OA-F2"]
    assert (row["event_start"], row["event_end"]) == (START, START + 2 * HOUR)
    assert row["version"] == "2026-07-01T09:00:00+00:00"
    assert [(i["start"], i["end"], i["shed_pct"], i["price"]) for i in row["intervals"]] == [
        (START.isoformat(), (START + HOUR).isoformat(), 10.0, None),
        ((START + HOUR).isoformat(), (START + 2 * HOUR).isoformat(), 30.0, 0.42),
    ]
    assert row["status"] == "received" and row["payload"] == event


def test_a_capacity_limit_event_in_the_31_shape(vtn_receiver, engine):
    event = unique(CAPACITY_EVENT)
    response = notify(vtn_receiver, event, operation="CREATE")
    assert response.status_code == 202, response.text
    [row] = stored(engine, event["id"])
    assert row["facility_ids"] == ["OA-F1"]
    assert [i["import_limit_kw"] for i in row["intervals"]] == [30.0, 25.5]
    assert row["event_end"] - row["event_start"] == timedelta(hours=1)


def test_redelivery_modification_and_deletion_are_versions(vtn_receiver, engine):
    event = unique(SIMPLE_EVENT)
    assert notify(vtn_receiver, event).json()["status"] == "accepted"
    assert notify(vtn_receiver, event, operation="PUT").json()["status"] == "duplicate"
    modified = {**event, "modificationDateTime": "2026-07-01T10:00:00Z"}
    modified["intervals"] = [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [2]}]}]
    assert notify(vtn_receiver, modified, operation="UPDATE").json()["status"] == "accepted"
    deleted = notify(vtn_receiver, modified, operation="DELETE")
    assert deleted.status_code == 202 and deleted.json()["operation"] == "delete"
    rows = stored(engine, event["id"])
    assert [(r["version"], r["status"]) for r in rows] == [
        ("2026-07-01T09:00:00+00:00", "received"),
        ("2026-07-01T10:00:00+00:00", "received"),
        ("deleted:2026-07-01T10:00:00+00:00", "cancelled"),
    ]
    assert rows[1]["intervals"][0]["shed_pct"] == 20.0


@pytest.mark.parametrize(("object_type", "operation"), [("PROGRAM", "POST"), ("REPORT", "CREATE"), ("EVENT", "GET"), ("EVENT", "READ")])
def test_other_objects_and_reads_are_acknowledged_and_ignored(vtn_receiver, engine, object_type, operation):
    before = stored(engine)
    response = notify(vtn_receiver, unique(SIMPLE_EVENT), operation=operation, object_type=object_type)
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert stored(engine) == before


@pytest.mark.parametrize(("token", "message"), [(None, "expected an Authorization: Bearer header"), ("wrong", "not the configured VTN token")])
def test_a_missing_or_wrong_token_is_401_and_stores_nothing(vtn_receiver, engine, token, message):
    before = stored(engine)
    response = notify(vtn_receiver, unique(SIMPLE_EVENT), token=token)
    assert response.status_code == 401 and message in response.json()["error"]
    assert stored(engine) == before


def changed(path: str, value) -> dict:
    event = unique(SIMPLE_EVENT)
    target = event
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is KeyError:
        del target[keys[-1]]
    else:
        target[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
    return event


@pytest.mark.parametrize(
    ("event", "operation", "message"),
    [
        (changed("intervals.0.payloads.0.values", [4]), "POST", "a SIMPLE level is 0, 1, 2 or 3"),
        (changed("targets", [{"type": "ORGANIZATION_ID", "values": ["81"]}]), "POST", "no target names a facility"),
        (changed("targets", ["OA-F1", "NOT-OURS"]), "POST", "unknown facility: NOT-OURS"),
        (changed("intervalPeriod.duration", "P9999Y"), "POST", "open-ended"),
        (changed("intervalPeriod.duration", "an hour"), "POST", "not an ISO 8601 duration"),
        (changed("intervalPeriod", KeyError), "POST", "has no intervalPeriod"),
        (changed("intervals", []), "POST", "non-empty list"),
        (changed("id", KeyError), "POST", "object.id must be a non-empty string"),
        (unique(SIMPLE_EVENT), "PATCH", "operation must be one of"),
    ],
)
def test_an_invalid_event_says_why_and_stores_nothing(vtn_receiver, engine, event, operation, message):
    before = stored(engine)
    response = notify(vtn_receiver, event, operation=operation)
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]
    assert stored(engine) == before


def test_a_receiver_without_a_token_refuses(warehouse):
    for url in serve(ReceiverConfig(warehouse.sqlalchemy_url)):
        response = notify(url, unique(SIMPLE_EVENT))
        assert response.status_code == 503 and "WATTLINE_OPENADR_TOKEN is not set" in response.json()["error"]


def window(start, duration: str, count: int = 2) -> dict:
    """SIMPLE_EVENT with its intervals over another window."""
    event = unique(SIMPLE_EVENT)
    event["intervalPeriod"] = {"start": start if isinstance(start, str) else iso(start), "duration": duration}
    event["intervals"] = event["intervals"][:1] * count
    return event


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (window("2020-07-01T17:00:00Z", "PT1H"), "the event is over: it ended at 2020-07-01 19:00 UTC"),
        (window("9999-12-30T00:00:00Z", "PT1H"), "is more than 7 days ahead"),
        (window(START, "PT1S", count=1), "the event lasts 0:00:01; at least 0:15:00"),
        (window(START, "PT10M"), "is not on a quarter hour"),
        (window(START, "PT13H"), "at most 1 day"),
    ],
)
def test_an_event_no_plan_can_serve_is_refused_by_the_utility_endpoint_s_rules(vtn_receiver, engine, event, message):
    """The same rules as on the utility endpoint (sensors/dr_events.check_window)."""
    before = stored(engine)
    response = notify(vtn_receiver, event)
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]
    assert stored(engine) == before


def test_deleting_an_event_that_is_over_is_acknowledged_and_stores_nothing(vtn_receiver, engine):
    before = stored(engine)
    response = notify(vtn_receiver, window("2020-07-01T17:00:00Z", "PT1H"), operation="DELETE")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ignored" and "the event is over" in response.json()["reason"]
    assert stored(engine) == before
