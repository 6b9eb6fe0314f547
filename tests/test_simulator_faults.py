"""Fault injection in the simulator, over real HTTP on loopback: each kind does to the
wire what it says, hits only its prefix for only its count, and records its hits."""

import csv
import io
import json
import socket
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
import requests

from simulator.config import SimulatorConfig
from simulator.faults import Fault
from simulator.readings import COLUMNS
from simulator.server import SimulatorServer

NOW = datetime(2026, 7, 16, 12, 0, tzinfo=UTC)
WINDOW = {"start": "2026-07-15T10:00:00Z", "end": "2026-07-15T11:00:00Z", "format": "csv"}


@pytest.fixture(scope="module")
def sim():
    with SimulatorServer(SimulatorConfig(seed=7, facilities=2, interval_s=60, now=lambda: NOW)) as server:
        yield server


@pytest.fixture(autouse=True)
def no_faults_left(sim):
    yield
    requests.delete(f"{sim.url}/v1/sim/faults", timeout=5)


@pytest.fixture(scope="module")
def clean(sim) -> dict[str, bytes]:
    """The bodies the simulator serves when nothing is injected."""
    return {
        "readings": requests.get(f"{sim.url}/v1/readings", params=WINDOW, timeout=10).content,
        "meters": requests.get(f"{sim.url}/v1/meters", timeout=10).content,
    }


def inject(sim, **fault) -> dict:
    response = requests.post(f"{sim.url}/v1/sim/faults", json=fault, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()


def faults(sim) -> list[dict]:
    return requests.get(f"{sim.url}/v1/sim/faults", timeout=5).json()


def readings(sim, timeout=10.0, **kwargs) -> requests.Response:
    return requests.get(f"{sim.url}/v1/readings", params=WINDOW, timeout=timeout, **kwargs)


def raw_get(sim, path: str) -> tuple[dict[str, str], bytes]:
    """The response as the wire carried it, read until the server closes the connection:
    headers, and the body bytes undecoded (no client-side length check in the way)."""
    address = urlsplit(sim.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {address.netloc}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return {"status": lines[0].split()[1], **headers}, body


def test_an_error_burst_answers_its_status_count_times_then_the_real_body(sim, clean):
    inject(sim, path_prefix="/v1/readings", kind="error", count=2, status=500)
    inject(sim, path_prefix="/v1/readings", kind="error", count=1)  # default 503, queued behind
    answers = [readings(sim) for _ in range(4)]
    assert [a.status_code for a in answers] == [500, 500, 503, 200]
    assert answers[0].json()["injected"] is True and "injected error fault" in answers[0].json()["detail"]
    assert answers[3].content == clean["readings"]
    assert [(f["kind"], f["status"], f["hits"], f["remaining"]) for f in faults(sim)] == [("error", 500, 2, 0), ("error", 503, 1, 0)]


def test_a_rate_limit_answers_429_with_retry_after(sim, clean):
    inject(sim, path_prefix="/v1/readings", kind="rate_limit", count=1, retry_after_s=3)
    limited = readings(sim)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    assert readings(sim).content == clean["readings"]
    assert faults(sim)[0]["hits"] == 1


def test_a_slow_response_outlasts_a_short_read_timeout_and_reaches_a_patient_client(sim, clean):
    # A delay far past the short timeout, so a busy machine cannot blur which came first.
    inject(sim, path_prefix="/v1/readings", kind="slow", count=2, delay_s=3.0)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        readings(sim, timeout=(2, 0.3))
    assert time.monotonic() - started < 2.5  # the client gave up; the server did not answer first

    started = time.monotonic()
    patient = readings(sim, timeout=(2, 10))
    assert time.monotonic() - started >= 3.0
    assert patient.status_code == 200 and patient.content == clean["readings"]
    assert faults(sim)[0]["hits"] == 2


def test_a_stall_mid_body_sends_the_headers_then_goes_quiet(sim, clean):
    inject(sim, path_prefix="/v1/readings", kind="slow", count=2, delay_s=1.0, keep_fraction=0.5)
    response = readings(sim, timeout=(2, 0.3), stream=True)
    assert response.status_code == 200  # headers came at once
    with pytest.raises(requests.ConnectionError, match="Read timed out"):
        response.content  # noqa: B018 - reading the body is the point

    started = time.monotonic()
    patient = readings(sim, timeout=(2, 5))
    assert time.monotonic() - started >= 1.0
    assert patient.content == clean["readings"]


def test_truncate_cuts_a_chunked_body_and_drops_the_connection(sim, clean):
    inject(sim, path_prefix="/v1/readings", kind="truncate", count=1, keep_fraction=0.3)
    headers, body = raw_get(sim, f"/v1/readings?start={WINDOW['start']}&end={WINDOW['end']}")
    assert headers["status"] == "200" and headers["transfer-encoding"] == "chunked"
    assert not body.endswith(b"0\r\n\r\n")  # no last chunk: the client can tell the body is cut
    delivered = _dechunk(body)
    assert delivered == clean["readings"][: int(len(clean["readings"]) * 0.3)]

    assert readings(sim).content == clean["readings"]  # spent after one request


def test_truncate_keeps_the_true_content_length_and_sends_less(sim, clean):
    inject(sim, path_prefix="/v1/meters", kind="truncate", count=1, keep_fraction=0.5)
    headers, body = raw_get(sim, "/v1/meters")
    assert headers["status"] == "200"
    assert int(headers["content-length"]) == len(clean["meters"])
    assert body == clean["meters"][: len(clean["meters"]) // 2]
    # What a client makes of it: a broken connection, not a short JSON document.
    inject(sim, path_prefix="/v1/meters", kind="truncate", count=1)
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        requests.get(f"{sim.url}/v1/meters", timeout=5)


def test_malformed_json_keeps_its_content_type_and_does_not_parse(sim, clean):
    inject(sim, path_prefix="/v1/meters", kind="malformed", count=1)
    response = requests.get(f"{sim.url}/v1/meters", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.content)  # well-formed HTTP, bad JSON
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert requests.get(f"{sim.url}/v1/meters", timeout=5).content == clean["meters"]


def test_malformed_csv_has_a_header_that_names_no_column(sim, clean):
    inject(sim, path_prefix="/v1/readings", kind="malformed", count=1)
    response = readings(sim)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    header = next(csv.reader(io.StringIO(response.text)))
    assert next(csv.reader(io.StringIO(clean["readings"].decode()))) == list(COLUMNS)
    assert not set(header) & set(COLUMNS)
    assert len(response.content) == len(clean["readings"])  # the rows are all there, unreadable


def test_faults_hit_their_prefix_only_and_never_the_control_routes(sim):
    inject(sim, path_prefix="/", kind="error", count=3)
    assert requests.get(f"{sim.url}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{sim.url}/v1/sim/modes", timeout=5).status_code == 200
    assert faults(sim)[0]["hits"] == 0
    assert requests.get(f"{sim.url}/v1/facilities", timeout=5).status_code == 503
    assert faults(sim)[0]["hits"] == 1

    requests.delete(f"{sim.url}/v1/sim/faults", timeout=5)
    inject(sim, path_prefix="/v1/meters", kind="error", count=1)
    assert requests.get(f"{sim.url}/v1/facilities", timeout=5).status_code == 200
    assert requests.get(f"{sim.url}/v1/meters", timeout=5).status_code == 503


def test_delete_clears_every_fault(sim, clean):
    inject(sim, path_prefix="/v1/readings", kind="error", count=5)
    inject(sim, path_prefix="/v1/meters", kind="malformed", count=5)
    cleared = requests.delete(f"{sim.url}/v1/sim/faults", timeout=5)
    assert cleared.status_code == 200 and cleared.json() == {"cleared": 2}
    assert faults(sim) == []
    assert readings(sim).content == clean["readings"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"kind": "error", "count": 1}, "expected a JSON object with path_prefix, kind, count"),
        ({"path_prefix": "/v1/readings", "kind": "explode", "count": 1}, "kind must be one of"),
        ({"path_prefix": "v1/readings", "kind": "error", "count": 1}, "starting with '/'"),
        ({"path_prefix": "/v1/readings", "kind": "error", "count": 0}, "count must be"),
        ({"path_prefix": "/v1/readings", "kind": "error", "count": "3"}, "count must be"),
        ({"path_prefix": "/v1/readings", "kind": "error", "count": 1, "status": 404}, "500–599"),
        ({"path_prefix": "/v1/readings", "kind": "rate_limit", "count": 1, "retry_after_s": 0.5}, "whole number of seconds"),
        ({"path_prefix": "/v1/readings", "kind": "slow", "count": 1}, "needs delay_s"),
        ({"path_prefix": "/v1/readings", "kind": "slow", "count": 1, "delay_s": -1}, "delay_s must be"),
        ({"path_prefix": "/v1/readings", "kind": "truncate", "count": 1, "keep_fraction": 1.0}, "keep_fraction must be"),
        ({"path_prefix": "/v1/readings", "kind": "malformed", "count": 1, "delay_s": 1}, "does not apply to malformed"),
        ({"path_prefix": "/v1/readings", "kind": "error", "count": 1, "colour": "red"}, "unknown field(s) colour"),
        ({"path_prefix": "/v1/sim/faults", "kind": "error", "count": 1}, "never faulted"),
    ],
)
def test_a_bad_fault_is_refused_with_the_reason(sim, body, reason):
    response = requests.post(f"{sim.url}/v1/sim/faults", json=body, timeout=5)
    assert response.status_code == 422
    assert reason in response.json()["detail"]
    assert faults(sim) == []


def test_a_body_that_is_not_json_is_refused(sim):
    response = requests.post(f"{sim.url}/v1/sim/faults", data=b"kind=error", timeout=5)
    assert response.status_code == 422 and "expected a JSON object" in response.json()["detail"]


def test_faults_can_be_set_through_the_config_and_read_in_process():
    config = SimulatorConfig(
        seed=7, facilities=2, now=lambda: NOW, faults=(Fault("/v1/facilities", "rate_limit", count=1, retry_after_s=2),)
    )
    with SimulatorServer(config) as server:
        first = requests.get(f"{server.url}/v1/facilities", timeout=5)
        second = requests.get(f"{server.url}/v1/facilities", timeout=5)
        [state] = server.app.state.faults.snapshot()
    assert (first.status_code, first.headers["Retry-After"], second.status_code) == (429, "2", 200)
    assert (state.hits, state.remaining) == (1, 0)
    with pytest.raises(ValueError, match="does not apply to rate_limit"):
        Fault("/v1/facilities", "rate_limit", status=500)


def _dechunk(body: bytes) -> bytes:
    """The payload of a chunked body, up to where it stops."""
    payload, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        payload, rest = payload + rest[:size], rest[size + 2 :]
    return payload
