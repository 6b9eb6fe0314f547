"""Helpers the test modules share (fixtures stay in conftest.py): test modules import
from here, never from each other."""

import base64
import contextlib
import hashlib
import hmac
import io
import json
import os
import secrets
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import requests
import sqlalchemy as sa
import uvicorn

from resources.readings_loader import ReadingRules, load_hour
from resources.telemetry_api import READING_COLUMNS
from sensors import webhook_server
from sensors.webhook_app import ReceiverConfig, create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli_env(home, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME" and not k.startswith("WATTLINE_")}
    return {**env, "WATTLINE_HOME": str(home), "WATTLINE_SIM_PORT": "0", **extra}


def load(engine, rows, hour):
    """Load hand-made readings for one hour through the real loader (registry included)."""
    header = ",".join(READING_COLUMNS)
    body = (header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n").encode()
    with engine.begin() as conn:
        for meter, facility in {(r[1], r[2]) for r in rows}:
            conn.execute(sa.text(
                "insert into raw.meters (meter_id, facility_id) values (:m, :f) on conflict do nothing"
            ), {"m": meter, "f": facility})
    result = load_hour(engine, lambda: contextlib.nullcontext(io.BytesIO(body)), hour, ReadingRules())
    assert result.rejected_total == 0, result.rejected
    return result


# The DR webhook receiver, signed as a utility signs (Standard Webhooks, computed from the
# spec by hand, not by the library the receiver uses).
SECRET_KEY = secrets.token_bytes(32)
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()
PATH = "/webhooks/utility/dr-notification"


def quarter_hours_ahead(count: int) -> datetime:
    """The quarter hour `count` quarter hours after the current one (events start on one)."""
    now = datetime.now(UTC)
    return now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0) + count * timedelta(minutes=15)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def serve(config: ReceiverConfig):
    """The receiver under uvicorn on a free loopback port, in a thread, as `wattline up`
    serves it (the slow-client guards of sensors/webhook_server.py); yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        create_app(config), host="127.0.0.1", port=port, log_level="warning", **webhook_server.uvicorn_settings(),
    ))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def send(url, body, *, key=SECRET_KEY, msg_id=None, timestamp=None, sign=None, headers=None, content_type="application/json"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    sent = {
        "content-type": content_type,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign if sign is not None else signature(key, msg_id, timestamp, raw),
    }
    sent.update(headers or {})
    return requests.post(url + PATH, data=raw, headers={k: v for k, v in sent.items() if v is not None}, timeout=10)


def stored(engine, event_id=None) -> list:
    with engine.connect() as conn:
        if event_id is None:
            return conn.execute(sa.text("select event_id, version from ops.dr_events order by inbox_id")).all()
        return conn.execute(
            sa.text("select * from ops.dr_events where event_id = :e order by inbox_id"), {"e": event_id}
        ).mappings().all()
