"""The demand-response webhook receiver: a small ASGI app `wattline up` serves on
WATTLINE_WEBHOOK_PORT (loopback by default).

- `POST /webhooks/utility/dr-notification`: a utility's DR event, signed per Standard
  Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`; secret
  WATTLINE_WEBHOOK_SECRET; 5 minutes' tolerance; several signatures for rotation).
- `POST /webhooks/openadr3/notification`: an OpenADR 3.0/3.1 VTN notification,
  authenticated by the bearer token WATTLINE_OPENADR_TOKEN; EVENT objects become DR
  events (sensors/openadr.py says how), other objects are acknowledged (200) and ignored.
- `GET /healthz`: the receiver and its database answer.

An accepted event is committed to `ops.dr_events` before the answer (202): once the
utility has its 202 the event survives a crash. A redelivery (same event id and
version) answers 202 and stores nothing new. A refused request stores nothing: 401 for
a missing, wrong or stale signature or token, 400 for a body that is not JSON, 408 for a
body that does not arrive within 10 s, 413 for a body over the size limit, 415 for another
content type, 422 for JSON that is not a valid
event (with the reason: the rules of sensors/dr_events.py, the same on both endpoints), 503
when no secret or token is configured, and 503 with Retry-After while the database does not
answer (the pool checks each connection before use, so the receiver recovers by itself once
the database is back). Bodies and secrets are never logged: an event id and a reason are.
"""

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from resources.sql_files import statements
from sensors.dr_events import DrEvent, InvalidEvent, check_kw_target, utility_event
from sensors.openadr import notification_event
from sensors.webhook_server import InFlightLimit

log = logging.getLogger("wattline.webhooks")

MAX_BODY_BYTES = 64 * 1024  # an event is a few hundred bytes; OpenADR events with many intervals a few KB
BODY_TIMEOUT_S = 10.0  # a delivery arrives in milliseconds; a client dribbling its body holds a worker
# While the database is down: the utility retries anyway (Standard Webhooks senders back
# off for minutes); a restart of PostgreSQL takes seconds.
RETRY_AFTER_S = 10
DB_CONNECT_TIMEOUT_S = 5  # an unreachable host must not hold a request until the sender gives up
DB_POOL_TIMEOUT_S = 5


@dataclass(frozen=True)
class ReceiverConfig:
    database_url: str  # SQLAlchemy URL of the warehouse
    webhook_secret: str | None = None
    openadr_token: str | None = None
    # The clock events are judged by (sensors/dr_events.check_window); a test that plans a
    # historical fleet's event sets it to the hour before that event.
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


class Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers


# What a database that is down, restarting or unreachable raises: through SQLAlchemy
# (checkout, pre-ping, pool timeout) or from the raw psycopg2 cursor the inbox uses.
def _unavailable_errors() -> tuple[type[Exception], ...]:
    import psycopg2

    return (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError, psycopg2.OperationalError, psycopg2.InterfaceError)


def _database_unavailable(error: Exception) -> Refused:
    # The driver's message (host, socket path; never the password) is for the log: the
    # sender learns only that it should retry.
    first_line = (str(getattr(error, "orig", None) or error).strip().splitlines() or [type(error).__name__])[0]
    log.warning("database unavailable: %s", first_line)
    return Refused(
        503, f"the database is unavailable ({type(error).__name__}); nothing was stored, retry in {RETRY_AFTER_S} s",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def create_app(config: ReceiverConfig | None = None) -> Starlette:
    """The receiver; without a config, the one `wattline up` exports (settings and the
    warehouse in use)."""
    config = config or _config_from_settings()
    engine = sa.create_engine(
        config.database_url, pool_size=4, max_overflow=4, pool_pre_ping=True, pool_timeout=DB_POOL_TIMEOUT_S,
        connect_args={"connect_timeout": DB_CONNECT_TIMEOUT_S},
    )
    sql = statements("dr_inbox.sql")
    unavailable = _unavailable_errors()

    async def stored(event: DrEvent, delivery_id: str | None) -> dict:
        try:
            return await run_in_threadpool(_store, engine, sql, event, delivery_id)
        except unavailable as error:
            raise _database_unavailable(error) from None

    async def healthz(request: Request) -> JSONResponse:
        try:
            await run_in_threadpool(_ping, engine)
        except (sa.exc.SQLAlchemyError, *unavailable) as error:
            refused = _database_unavailable(error)
            return JSONResponse({"status": "unavailable", "error": str(refused)}, status_code=503, headers=refused.headers)
        return JSONResponse({"status": "ok"})

    async def utility_notification(request: Request) -> JSONResponse:
        try:
            if config.webhook_secret is None:
                raise Refused(503, "WATTLINE_WEBHOOK_SECRET is not set: this receiver cannot verify signatures")
            body = await _body(request)
            delivery_id = _verify_signature(config.webhook_secret, request.headers, body)
            event = utility_event(body, config.clock())
            outcome = await stored(event, delivery_id)
        except (Refused, InvalidEvent) as refused:
            return _refusal("utility DR notification", refused)
        log.info("DR event %s version %s %s (inbox %s)", event.event_id, event.version, outcome["status"], outcome["inbox_id"])
        return JSONResponse(outcome, status_code=202)

    async def openadr_notification(request: Request) -> JSONResponse:
        try:
            if config.openadr_token is None:
                raise Refused(503, "WATTLINE_OPENADR_TOKEN is not set: this receiver cannot authenticate the VTN")
            _check_bearer(config.openadr_token, request.headers.get("authorization", ""))
            body = await _body(request)
            event, action = notification_event(body, config.clock())
            if event is None:
                log.info("OpenADR notification ignored: %s", action)
                return JSONResponse({"status": "ignored", "reason": action})
            outcome = await stored(event, None)
        except (Refused, InvalidEvent) as refused:
            return _refusal("OpenADR notification", refused)
        log.info("OpenADR event %s version %s (%s) %s (inbox %s)", event.event_id, event.version, action, outcome["status"], outcome["inbox_id"])
        return JSONResponse({**outcome, "operation": action}, status_code=202)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        engine.dispose()

    return Starlette(lifespan=lifespan, middleware=[Middleware(InFlightLimit)], routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/webhooks/utility/dr-notification", utility_notification, methods=["POST"]),
        Route("/webhooks/openadr3/notification", openadr_notification, methods=["POST"]),
    ])


def _refusal(what: str, refused: Refused | InvalidEvent) -> JSONResponse:
    """The answer to a refused request: its status and reason, logged without the body."""
    log.warning("%s refused (%s): %s", what, refused.status, refused)
    return JSONResponse({"error": str(refused)}, status_code=refused.status, headers=getattr(refused, "headers", None))


def _config_from_settings() -> ReceiverConfig:
    from orchestration.runtime import ensure_warehouse
    from orchestration.settings import get_settings

    settings = get_settings()
    database = ensure_warehouse(settings, bi_access=False)

    def secret(value):
        return value.get_secret_value() if value is not None else None

    return ReceiverConfig(database.sqlalchemy_url, secret(settings.webhook_secret), secret(settings.openadr_token))


async def _body(request: Request) -> bytes:
    """The raw body, refused past MAX_BODY_BYTES whatever Content-Length claims."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise Refused(415, f"expected Content-Type application/json, got {content_type or 'none'}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Refused(413, f"body of {int(declared):,} bytes; at most {MAX_BODY_BYTES:,}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise Refused(413, f"body over {MAX_BODY_BYTES:,} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise Refused(408, f"the body did not arrive within {BODY_TIMEOUT_S:.0f} s ({size:,} bytes so far)") from None
    return b"".join(chunks)


def _verify_signature(secret: str, headers, body: bytes) -> str:
    """Standard Webhooks verification (the reference implementation: HMAC-SHA256 over
    "id.timestamp.body", constant-time comparison, any of several `v1,` signatures,
    5 minutes' tolerance either way); the delivery's webhook-id."""
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    signed = {name: headers.get(name, "") for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    try:
        Webhook(secret).verify(body, signed, json_parse=False)
    except WebhookVerificationError as error:
        raise Refused(401, f"signature: {error}") from None
    except (ValueError, UnicodeDecodeError):
        # A signature entry without "v1," or with bad base64, or a body that is not UTF-8.
        raise Refused(401, "signature: malformed webhook-signature header or body") from None
    return signed["webhook-id"]


def _check_bearer(expected: str, header: str) -> None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Refused(401, "token: expected an Authorization: Bearer header")
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Refused(401, "token: not the configured VTN token")


def _ping(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text("select 1"))


def _store(engine: sa.Engine, sql: dict[str, str], event: DrEvent, delivery_id: str | None) -> dict:
    """Commit the event unless its id and version are there already; refuses events for
    facilities the registry does not know (or no longer lists as active), and a kW target
    beyond what they can shed."""
    with engine.begin() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql["known_facilities"], {"facility_ids": list(event.facility_ids)})
        contract_demand = dict(cur.fetchall())
        unknown = [f for f in event.facility_ids if f not in contract_demand]
        if unknown:
            raise InvalidEvent(f"unknown facility: {', '.join(unknown[:10])}")
        if event.target_reduction_kw is not None:
            check_kw_target(event.target_reduction_kw, contract_demand)
        cur.execute(sql["insert_event"], {
            "event_id": event.event_id,
            "version": event.version,
            "source": event.source,
            "facility_ids": list(event.facility_ids),
            "event_start": event.event_start,
            "event_end": event.event_end,
            "target_reduction_pct": event.target_reduction_pct,
            "target_reduction_kw": event.target_reduction_kw,
            "intervals": json.dumps(event.intervals) if event.intervals is not None else None,
            "payload": json.dumps(event.payload),
            "delivery_id": delivery_id,
            "status": event.status,
        })
        inserted = cur.fetchone()
        if inserted is not None:
            return {"status": "accepted", "event_id": event.event_id, "version": event.version, "inbox_id": inserted[0]}
        cur.execute(sql["existing_event"], {"event_id": event.event_id, "version": event.version})
        return {"status": "duplicate", "event_id": event.event_id, "version": event.version, "inbox_id": cur.fetchone()[0]}
