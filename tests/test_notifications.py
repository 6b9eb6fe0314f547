"""Alert notifications end to end on loopback: a new alert goes to a signed webhook, a
Slack-style webhook and an SMTP server; a channel answering 500 is retried at a later
tick and every attempt is recorded, while the other channels deliver at once; a channel
that keeps failing is given up after its attempts; an escalation is a new notification."""

import base64
import hashlib
import hmac
import json
import secrets
import socket

import pytest
import sqlalchemy as sa
from dagster import build_sensor_context
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestration.settings import get_settings
from resources.alert_store import Condition, raise_alert
from resources.postgres import PostgresResource, ensure_warehouse_schema
from sensors.notifications import notifications_sensor
from simulator.server import BackgroundServer
from tests.conftest import create_database, drop_database

KEY = secrets.token_bytes(32)
SECRET = "whsec_" + base64.b64encode(KEY).decode()


class Receiver:
    """A webhook endpoint that fails its first `failures` requests, and a Slack one."""

    def __init__(self):
        self.failures = 0
        self.hooks: list[tuple[dict, bytes]] = []
        self.slack: list[dict] = []

    def app(self) -> Starlette:
        async def hook(request: Request):
            if self.failures > 0:
                self.failures -= 1
                return JSONResponse({"error": "boom"}, status_code=500)
            self.hooks.append((dict(request.headers), await request.body()))
            return JSONResponse({"ok": True})

        async def slack(request: Request):
            self.slack.append(json.loads(await request.body()))
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/slack", slack, methods=["POST"])])


@pytest.fixture
def world(pg_server, monkeypatch):
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
            return "250 OK"

    database = create_database(pg_server, "wattline_notify")
    ensure_warehouse_schema(database)
    receiver = Receiver()
    server = BackgroundServer(receiver.app()).start()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        smtp_port = sock.getsockname()[1]
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    monkeypatch.setenv("WATTLINE_NOTIFY_WEBHOOK_URL", f"{server.url}/hook")
    monkeypatch.setenv("WATTLINE_NOTIFY_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("WATTLINE_NOTIFY_SLACK_URL", f"{server.url}/slack")
    monkeypatch.setenv("WATTLINE_NOTIFY_SMTP_URL", f"smtp://127.0.0.1:{smtp_port}")
    monkeypatch.setenv("WATTLINE_NOTIFY_EMAIL_TO", "ops@example.com, energy@example.com")
    monkeypatch.setenv("WATTLINE_NOTIFY_MAX_ATTEMPTS", "3")
    get_settings.cache_clear()
    engine = sa.create_engine(database.sqlalchemy_url)
    try:
        yield database, engine, receiver, inbox
    finally:
        get_settings.cache_clear()
        smtp.stop()
        server.stop()
        engine.dispose()
        drop_database(pg_server, database)


def tick(database) -> str:
    with build_sensor_context(resources={"postgres": PostgresResource(url=database.url)}) as context:
        return notifications_sensor(context).skip_message


def attempts(engine, alert_id) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "select channel, alert_event, attempt, outcome from ops.notifications where alert_id = :a order by channel, attempt"
        ), {"a": alert_id})]


def make_due(engine) -> None:
    """What the backoff waits for, without waiting: the pending deliveries are due now."""
    with engine.begin() as conn:
        conn.execute(sa.text("update ops.notification_queue set next_attempt_at = now() where status = 'pending'"))


def raise_budget(engine, level: int, name: str) -> int:
    condition = Condition("carbon_budget:B:F1:2026-05", "carbon_budget", "F1 budget B", level, name, f"F1 budget at {name}")
    with engine.begin() as conn, conn.connection.driver_connection.cursor() as cur:
        return raise_alert(cur, condition, get_settings().notification_channels)[0]


def test_a_failing_channel_is_retried_and_recorded_while_the_others_deliver(world):
    database, engine, receiver, inbox = world
    receiver.failures = 2  # the first attempt and urllib3's quick retry within it
    alert_id = raise_budget(engine, 1, "warning")

    assert tick(database) == "2 delivered, 1 to retry, 0 given up, 0 deferred to the next tick"
    assert attempts(engine, alert_id) == [
        ("email", "raised", 1, "delivered"), ("slack", "raised", 1, "delivered"), ("webhook", "raised", 1, "failed"),
    ]
    assert tick(database) == "no notification due"  # backing off
    make_due(engine)
    assert tick(database) == "1 delivered, 0 to retry, 0 given up, 0 deferred to the next tick"
    assert attempts(engine, alert_id)[-1] == ("webhook", "raised", 2, "delivered")

    # What each channel got: a signed webhook (checked by hand, per the spec), Slack text, e-mail.
    [(headers, body)] = receiver.hooks
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    assert f"v1,{expected}" in headers["webhook-signature"].split()
    payload = json.loads(body)
    assert payload["type"] == "alert.raised" and payload["alert"]["id"] == alert_id and payload["alert"]["level_name"] == "warning"
    assert receiver.slack == [{"text": "*[Wattline] warning carbon_budget alert raised: F1 budget B*\nF1 budget at warning"}]
    [(recipients, mail)] = inbox.messages
    assert recipients == ["ops@example.com", "energy@example.com"]
    assert "Subject: [Wattline] warning carbon_budget alert raised: F1 budget B" in mail
    assert f"wattline alerts ack {alert_id}" in mail
    with engine.connect() as conn:
        details = conn.execute(sa.text("select detail from ops.notifications")).scalars().all()
    assert not [d for d in details if "127.0.0.1" in d or SECRET in d]  # no URL or secret recorded

    # Escalation is news: one more notification per channel.
    assert raise_budget(engine, 2, "critical") == alert_id
    assert tick(database) == "3 delivered, 0 to retry, 0 given up, 0 deferred to the next tick"
    assert json.loads(receiver.hooks[-1][1])["type"] == "alert.escalated"


def test_a_channel_that_keeps_failing_is_given_up_after_its_attempts(world):
    database, engine, receiver, inbox = world
    receiver.failures = 10**6
    alert_id = raise_budget(engine, 1, "warning")
    tick(database)
    for _ in range(2):
        make_due(engine)
        tick(database)
    assert [a for a in attempts(engine, alert_id) if a[0] == "webhook"] == [
        ("webhook", "raised", n, "failed") for n in (1, 2, 3)
    ]
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.text("select channel, status from ops.notification_queue where alert_id = :a"), {"a": alert_id}).all())
    assert statuses == {"webhook": "failed", "slack": "delivered", "email": "delivered"}
    assert len(inbox.messages) == len(receiver.slack) == 1  # delivered once, never repeated
    make_due(engine)
    assert tick(database) == "no notification due"
