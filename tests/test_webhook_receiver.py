"""The DR webhook receiver over HTTP on loopback, as a utility meets it: a signed event
is stored before the 202, a redelivery stores nothing new, a revision is a new version,
and every refused request (signature, body, size, content type) says why and stores
nothing. Signatures here are computed from the Standard Webhooks spec by hand, not by
the library the receiver uses."""

import base64
import json
import secrets
import socket
import time
import uuid
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from sensors import webhook_app, webhook_server
from sensors.webhook_app import MAX_BODY_BYTES, ReceiverConfig
from tests.support import PATH, SECRET, SECRET_KEY, iso, quarter_hours_ahead, send, serve, signature, stored

# Two hours ahead: valid for the whole module's run.
START = quarter_hours_ahead(8)
END = START + timedelta(hours=2)


@pytest.fixture(scope="module")
def receiver(warehouse, engine):
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into raw.facilities (facility_id, name, timezone, active, contract_demand_kw) values "
            "('DR-F1', 'DR one', 'Europe/London', true, 500), ('DR-F2', 'DR two', 'Europe/London', true, 300), "
            "('DR-F3', 'DR three (closed)', 'Europe/London', false, null), ('DR-F4', 'DR four (no contract)', 'Europe/London', true, null) "
            "on conflict (facility_id) do nothing"
        ))
    yield from serve(ReceiverConfig(warehouse.sqlalchemy_url, webhook_secret=SECRET))


def event(**changes) -> dict:
    body = {
        "event_id": f"EVT-{uuid.uuid4().hex[:8]}",
        "facility_ids": ["DR-F1", "DR-F2"],
        "event_start": iso(START),
        "event_end": iso(END),
        "target_reduction_percentage": 15,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_a_signed_event_is_stored_before_the_202(receiver, engine):
    body = event()
    response = send(receiver, body)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "accepted" and answer["event_id"] == body["event_id"]
    [row] = stored(engine, body["event_id"])
    assert row["inbox_id"] == answer["inbox_id"] and row["version"] == answer["version"]
    assert row["facility_ids"] == ["DR-F1", "DR-F2"] and row["source"] == "utility"
    assert (row["event_start"], row["event_end"]) == (START, END)
    assert row["target_reduction_pct"] == 15 and row["target_reduction_kw"] is None
    assert row["status"] == "received" and row["payload"] == body
    assert row["delivery_id"].startswith("msg_")


def test_a_redelivery_stores_nothing_new_and_a_revision_is_a_new_version(receiver, engine):
    body = event()
    first = send(receiver, body).json()
    # The utility retries: a new delivery id and timestamp, the same event.
    again = send(receiver, body)
    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    assert again.json()["inbox_id"] == first["inbox_id"]
    assert len(stored(engine, body["event_id"])) == 1
    revised = send(receiver, {**body, "event_end": iso(END + timedelta(hours=1))})
    assert revised.status_code == 202 and revised.json()["status"] == "accepted"
    assert revised.json()["version"] != first["version"]
    assert [r["event_end"] for r in stored(engine, body["event_id"])] == [END, END + timedelta(hours=1)]
    # A version the utility names itself is kept as given.
    named = event(version=3, target_reduction_percentage=None, target_reduction_kw=40.0)
    assert send(receiver, named).json()["version"] == "3"
    assert stored(engine, named["event_id"])[0]["target_reduction_kw"] == 40.0


def test_signature_rotation_accepts_any_matching_signature(receiver, engine):
    body = event()
    raw = json.dumps(body).encode()
    old_key = secrets.token_bytes(32)
    timestamp = int(time.time())
    both = f"{signature(old_key, 'msg_rot', timestamp, raw)} {signature(SECRET_KEY, 'msg_rot', timestamp, raw)}"
    response = send(receiver, raw, msg_id="msg_rot", timestamp=timestamp, sign=both)
    assert response.status_code == 202, response.text
    assert len(stored(engine, body["event_id"])) == 1


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong_secret", "No matching signature found"),
        ("missing_signature", "Missing required headers"),
        ("missing_id", "Missing required headers"),
        ("stale", "Message timestamp too old"),
        ("from_the_future", "Message timestamp too new"),
        ("body_changed_after_signing", "No matching signature found"),
        # standardwebhooks 1.3 compares each signature entry whole: one that does not even
        # decode matches nothing, as a wrong one does.
        ("malformed_signature", "No matching signature found"),
        ("other_scheme_only", "No matching signature found"),
    ],
)
def test_a_bad_signature_is_401_and_stores_nothing(receiver, engine, case, reason):
    body = event()
    raw = json.dumps(body).encode()
    now = int(time.time())
    kwargs = {
        "wrong_secret": {"key": secrets.token_bytes(32)},
        "missing_signature": {"headers": {"webhook-signature": None}},
        "missing_id": {"headers": {"webhook-id": None}},
        "stale": {"timestamp": now - 6 * 60},
        "from_the_future": {"timestamp": now + 6 * 60},
        "body_changed_after_signing": {"sign": signature(SECRET_KEY, "msg_x", now, raw), "msg_id": "msg_x", "timestamp": now},
        "malformed_signature": {"sign": "v1 not-base64!"},
        "other_scheme_only": {"sign": "v1a,abc v2," + base64.b64encode(b"x" * 32).decode()},
    }[case]
    payload = json.dumps({**body, "target_reduction_percentage": 99}).encode() if case == "body_changed_after_signing" else raw
    before = stored(engine)
    response = send(receiver, payload, **kwargs)
    assert response.status_code == 401, response.text
    assert reason in response.json()["error"]
    assert stored(engine) == before


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "body is not JSON"),
        ([1, 2], 422, "expected a JSON object"),
        (event(facility_ids=["DR-F1", "NOPE-9"]), 422, "unknown facility: NOPE-9"),
        (event(facility_ids=["DR-F3"]), 422, "unknown facility: DR-F3"),
        (event(facility_ids=[]), 422, "facility_ids must be a non-empty list"),
        (event(event_end=iso(START - timedelta(hours=1))), 422, "is not after event_start"),
        (event(event_end=iso(START + timedelta(hours=50))), 422, "at most 1 day"),
        (event(event_start=START.replace(tzinfo=None).isoformat()), 422, "has no time zone"),
        (event(event_start="tomorrow"), 422, "is not an ISO 8601 timestamp"),
        (event(target_reduction_percentage=0), 422, "must be in (0, 100]"),
        (event(target_reduction_percentage=150), 422, "must be in (0, 100]"),
        (event(target_reduction_percentage="15"), 422, "must be a number"),
        (event(target_reduction_kw=10), 422, "exactly one of"),
        (event(target_reduction_percentage=None), 422, "exactly one of"),
        (event(target_reduction_percentage=None, target_reduction_kw=-5), 422, "must be above 0"),
        (event(event_id=""), 422, "event_id must be a non-empty string"),
        (event(event_id="EVT\n1"), 422, "event_id may hold only letters, digits"),
        (event(event_id="EVT...1"), 422, "event_id may hold only letters, digits"),
        (event(priority="high"), 422, "unknown fields: priority"),
    ],
)
def test_an_invalid_body_says_why_and_stores_nothing(receiver, engine, body, status, message):
    before = stored(engine)
    response = send(receiver, body if isinstance(body, bytes) else json.dumps(body).encode())
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert stored(engine) == before


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # Already over: a 2020 event, and one that ended a quarter hour ago.
        ({"event_start": "2020-07-01T17:00:00Z", "event_end": "2020-07-01T19:00:00Z"}, "the event is over: it ended at 2020-07-01 19:00 UTC"),
        ({"event_start": iso(quarter_hours_ahead(-4)), "event_end": iso(quarter_hours_ahead(0))}, "the event is over"),
        # Too far ahead to be an event a utility calls.
        ({"event_start": "9999-12-30T00:00:00Z", "event_end": "9999-12-30T01:00:00Z"}, "is more than 7 days ahead"),
        # An hour past the 7 days from when the test runs, not from when it was collected.
        (lambda: {"event_start": iso(quarter_hours_ahead(4 * 24 * 7 + 4)), "event_end": iso(quarter_hours_ahead(4 * 24 * 7 + 8))}, "is more than 7 days ahead"),
        # Shorter than the plan's interval, or off its quarter hours.
        ({"event_end": iso(START + timedelta(seconds=1))}, "the event lasts 0:00:01; at least 0:15:00"),
        ({"event_start": iso(START + timedelta(minutes=5)), "event_end": iso(END + timedelta(minutes=5))}, "event_start ("),
        ({"event_end": iso(END + timedelta(minutes=7))}, "is not on a quarter hour"),
        # kW targets past what the facilities can shed (contract demands 500 + 300 kW).
        ({"target_reduction_percentage": None, "target_reduction_kw": 1e300}, "more than the facilities can shed"),
        ({"target_reduction_percentage": None, "target_reduction_kw": 800.5}, "their contract demand sums to 800 kW"),
        ({"facility_ids": ["DR-F1", "DR-F4"], "target_reduction_percentage": None, "target_reduction_kw": 2e6},
         "counting 1,000,000 kW for each without a contract demand"),
    ],
)
def test_an_event_no_plan_can_serve_is_refused_with_the_rule_and_stores_nothing(receiver, engine, changes, message):
    """Signed and well-formed, but nonsense: over, years ahead, a second long, off the
    plan's quarter hours, or a kW target no facility sheds (issue 18, defect 9)."""
    before = stored(engine)
    response = send(receiver, event(**(changes() if callable(changes) else changes)))
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]
    assert stored(engine) == before


def test_events_at_the_edges_of_the_rules_are_accepted(receiver, engine):
    """An event in progress (a revision while it runs), one 15 minutes long, one at the
    week's horizon, and a kW target of exactly the contract demands."""
    for changes in [
        {"event_start": iso(quarter_hours_ahead(-2)), "event_end": iso(quarter_hours_ahead(2))},
        {"event_end": iso(START + timedelta(minutes=15))},
        {"event_start": iso(quarter_hours_ahead(4 * 24 * 7)), "event_end": iso(quarter_hours_ahead(4 * 24 * 7 + 4))},
        {"target_reduction_percentage": None, "target_reduction_kw": 800},
        {"target_reduction_percentage": 100},
    ]:
        body = event(**changes)
        response = send(receiver, body)
        assert response.status_code == 202, (changes, response.text)
        assert len(stored(engine, body["event_id"])) == 1


def test_content_type_and_size_are_enforced(receiver, engine):
    before = stored(engine)
    response = send(receiver, event(), content_type="text/plain")
    assert response.status_code == 415 and "application/json" in response.json()["error"]
    huge = json.dumps(event(note="x" * MAX_BODY_BYTES)).encode()
    response = send(receiver, huge)
    assert response.status_code == 413
    assert stored(engine) == before


def test_health_and_a_receiver_without_a_secret(warehouse, receiver):
    assert requests.get(receiver + "/healthz", timeout=5).json() == {"status": "ok"}
    for url in serve(ReceiverConfig(warehouse.sqlalchemy_url, webhook_secret=None)):
        response = send(url, event())
        assert response.status_code == 503 and "WATTLINE_WEBHOOK_SECRET is not set" in response.json()["error"]


def test_the_simulated_utility_cli_sends_a_signed_event(receiver, engine):
    """`wattline simulate dr-event` as an operator runs it against a running receiver."""
    import os
    import subprocess
    import sys

    event_id = f"CLI-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable, "-m", "orchestration.cli", "simulate", "dr-event", "--facilities", "DR-F1,DR-F2",
        "--start", "+2h", "--duration", "90", "--reduction-pct", "12.5", "--event-id", event_id, "--url", receiver,
    ]
    env = {**os.environ, "WATTLINE_WEBHOOK_SECRET": SECRET}
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("202 ")
    [row] = stored(engine, event_id)
    assert row["facility_ids"] == ["DR-F1", "DR-F2"] and row["target_reduction_pct"] == 12.5
    assert row["event_start"].minute % 15 == 0 and row["event_end"] - row["event_start"] == timedelta(minutes=90)

    # A wrong secret: the receiver refuses it, and the command says so with a non-zero exit.
    wrong = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    out = subprocess.run(command, env={**env, "WATTLINE_WEBHOOK_SECRET": wrong}, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 1 and out.stdout.startswith("401 ")


def raw_connection(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """What the server sends until it closes the connection, and when it closed."""
    began, received = time.monotonic(), b""
    sock.settimeout(limit_s)
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pass
    return received, time.monotonic() - began


def read_response(sock: socket.socket, limit_s: float) -> bytes:
    """One HTTP response: its head and the Content-Length bytes of body after it."""
    sock.settimeout(limit_s)
    received = b""

    def more() -> bytes:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed mid-response: {received[:200]!r}"
        return chunk

    while b"\r\n\r\n" not in received:
        received += more()
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += more()
    return head + b"\r\n\r\n" + body


def test_a_client_dribbling_its_headers_is_cut_off(receiver, monkeypatch):
    """Slowloris: request headers that never finish arriving hold a connection only until
    the header deadline, and a complete request on a kept-alive connection is unaffected."""
    monkeypatch.setattr(webhook_server, "HEADER_TIMEOUT_S", 2.0)
    with raw_connection(receiver) as sock:
        sock.sendall(f"POST {PATH} HTTP/1.1\r\nHost: receiver\r\n".encode())
        received, after = read_until_closed(sock, limit_s=8)
    assert received == b"" and after < 6, f"closed after {after:.1f} s"

    # Three prompt requests on one connection, the last past the deadline counted from the
    # connection: each response re-arms it, so none is cut.
    with raw_connection(receiver) as sock:
        opened = time.monotonic()
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: receiver\r\n\r\n")
            assert read_response(sock, limit_s=8).startswith(b"HTTP/1.1 200"), "the kept-alive connection was cut"
            time.sleep(1.2)
        assert time.monotonic() - opened > 2.0 * 1.5


def test_a_body_that_does_not_arrive_in_time_is_408_and_stores_nothing(receiver, engine, monkeypatch):
    monkeypatch.setattr(webhook_app, "BODY_TIMEOUT_S", 1.0)
    before = len(stored(engine))
    raw = json.dumps(event()).encode()
    with raw_connection(receiver) as sock:
        sock.sendall(
            f"POST {PATH} HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(raw)}\r\n\r\n".encode() + raw[:20]
        )
        received = read_response(sock, limit_s=8)
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"did not arrive within 1 s" in rest
    assert len(stored(engine)) == before


def test_while_the_database_is_down_deliveries_get_503_with_retry_after_and_it_recovers(tmp_path):
    """A receiver on a server of its own, stopped under it: a delivery and /healthz get
    503, Retry-After and a JSON reason (not a plain-text 500), nothing is lost to a
    crash, and once the server is back the receiver reconnects by itself."""
    from orchestration import embedded_postgres
    from resources.postgres import ensure_warehouse_schema
    from tests.conftest import create_database

    home = tmp_path / "own-server"
    database = create_database(embedded_postgres.start(home), "wattline_down")
    try:
        ensure_warehouse_schema(database)
        engine = sa.create_engine(database.sqlalchemy_url)
        with engine.begin() as conn:
            conn.execute(sa.text("insert into raw.facilities (facility_id, name, timezone) values ('DR-F1', 'DR one', 'UTC')"))
        engine.dispose()
        for url in serve(ReceiverConfig(database.sqlalchemy_url, webhook_secret=SECRET)):
            assert send(url, event(facility_ids=["DR-F1"])).status_code == 202  # its pool holds a connection now
            embedded_postgres.stop(home)

            body = event(facility_ids=["DR-F1"])
            began = time.monotonic()
            response = send(url, body)
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) > 0
            assert "the database is unavailable" in response.json()["error"]
            assert time.monotonic() - began < 8  # the connect timeout, not the sender's
            health = requests.get(url + "/healthz", timeout=10)
            assert health.status_code == 503 and int(health.headers["retry-after"]) > 0
            assert health.json()["status"] == "unavailable"

            embedded_postgres.start(home)
            deadline = time.monotonic() + 30
            while requests.get(url + "/healthz", timeout=10).status_code != 200:
                assert time.monotonic() < deadline, "the receiver did not reconnect"
                time.sleep(0.1)
            # The utility's retry of the refused delivery is stored.
            response = send(url, body)
            assert response.status_code == 202, response.text
        engine = sa.create_engine(database.sqlalchemy_url)
        assert len(stored(engine, body["event_id"])) == 1
        engine.dispose()
    finally:
        embedded_postgres.stop(home)


def test_a_receiver_pointed_at_a_closed_port_answers_503_with_retry_after():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the socket is: nothing listens there
    for url in serve(ReceiverConfig(f"postgresql+psycopg2://wattline@127.0.0.1:{port}/wattline", webhook_secret=SECRET)):
        response = send(url, event())
        assert response.status_code == 503 and int(response.headers["retry-after"]) > 0
        assert response.headers["content-type"] == "application/json"
        assert "the database is unavailable" in response.json()["error"]


def test_idle_connections_never_lock_the_utility_out(receiver, engine):
    """80 TCP connections from loopback that send nothing (more than the 64 requests the
    receiver answers at once): a signed delivery and /healthz from the same address still
    answer at once, and the idle connections past the per-client cap are closed."""
    idle = [raw_connection(receiver) for _ in range(80)]
    try:
        body = event()
        began = time.monotonic()
        response = send(receiver, body)
        assert response.status_code == 202, response.text
        health = requests.get(receiver + "/healthz", timeout=5)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert time.monotonic() - began < 5
        assert len(stored(engine, body["event_id"])) == 1

        def closed(sock: socket.socket) -> bool:
            sock.setblocking(False)
            try:
                return sock.recv(1) == b""
            except BlockingIOError:
                return False
            except OSError:
                return True

        # Well before the header deadline would close them all anyway.
        deadline = time.monotonic() + webhook_server.HEADER_TIMEOUT_S / 2
        while sum(closed(sock) for sock in idle) < len(idle) - webhook_server.MAX_IDLE_PER_CLIENT:
            assert time.monotonic() < deadline, "the idle connections past the per-client cap stayed open"
            time.sleep(0.05)
    finally:
        for sock in idle:
            sock.close()


def test_past_the_requests_in_flight_a_request_gets_503_with_retry_after(receiver, monkeypatch):
    """Requests whose bodies are still arriving hold the receiver's slots; the next one is
    told to come back (503, Retry-After) instead of queueing, and the slots free again."""
    monkeypatch.setattr(webhook_server, "MAX_IN_FLIGHT", 2)
    raw = json.dumps(event()).encode()
    holders = []
    try:
        for _ in range(2):
            sock = raw_connection(receiver)
            sock.sendall(
                f"POST {PATH} HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(raw)}\r\n\r\n".encode() + raw[:10]
            )
            holders.append(sock)
        deadline = time.monotonic() + 10
        while (response := requests.get(receiver + "/healthz", timeout=5)).status_code != 503:
            assert time.monotonic() < deadline, "two requests in flight did not fill the slots"
            time.sleep(0.05)
        assert int(response.headers["retry-after"]) > 0 and "requests at once" in response.json()["error"]
    finally:
        for sock in holders:
            sock.close()
    deadline = time.monotonic() + 15
    while requests.get(receiver + "/healthz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the slots were not given back"
        time.sleep(0.05)


def test_the_kubernetes_receiver_runs_with_the_same_guards():
    """deploy/kubernetes/webhook-receiver.yaml serves the receiver as `wattline up` does."""
    from pathlib import Path

    import yaml

    manifest = Path(__file__).parents[1] / "deploy" / "kubernetes" / "webhook-receiver.yaml"
    deployment = next(d for d in yaml.safe_load_all(manifest.read_text()) if d and d.get("kind") == "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    options = webhook_server.uvicorn_options()
    assert any(command[i:i + len(options)] == options for i in range(len(command)))
