"""How `wattline up` serves the DR webhook receiver: uvicorn on loopback, bounded
against slow and greedy clients without locking the utility out.

A utility's delivery is a few hundred bytes sent at once. A client that dribbles its
request headers (slowloris) would otherwise hold a connection for as long as it likes:
uvicorn times out only idle keep-alive connections, not a request that is still
arriving, so the protocol below closes one whose headers are not all in after
HEADER_TIMEOUT_S. Bodies have their own deadline in the app (sensors/webhook_app.py
answers 408).

Idle connections cost a socket, not a worker, so they never count against the limit of
requests being answered (MAX_IN_FLIGHT, past which the app answers 503 at once): uvicorn's
own --limit-concurrency counts open connections, and 64 idle ones made /healthz and every
delivery answer 503. Instead, a new connection always gets in: past MAX_IDLE_PER_CLIENT
idle connections from its address, or MAX_CONNECTIONS in all, the oldest idle ones are
closed to make room.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_S = 10.0  # from connection (or the previous response) to the last header
KEEP_ALIVE_S = 5
MAX_IN_FLIGHT = 64  # requests being answered at once; the bursts seen come over 8
MAX_IDLE_PER_CLIENT = 8  # idle connections one address keeps; a sender's pool needs a few
MAX_CONNECTIONS = 256  # open sockets in all, well under the process's file limit
RETRY_AFTER_S = 1


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers have not
    all arrived within HEADER_TIMEOUT_S, and closing the oldest idle connections when a
    new one arrives past MAX_IDLE_PER_CLIENT (its address) or MAX_CONNECTIONS (all)."""

    _header_deadline: asyncio.TimerHandle | None = None
    # When the connection last became idle (connected, or answered, with nothing of a next
    # request received since); None while a request arrives or is answered.
    _idle_since: float | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        self._make_room()
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        self._idle_since = None
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._idle_since = self.loop.time()
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _make_room(self) -> None:
        others = [c for c in self.connections if c is not self and not c.transport.is_closing()]
        idle = sorted((c for c in others if getattr(c, "_idle_since", None) is not None), key=lambda c: c._idle_since)
        host = self.client[0] if self.client else None
        mine = [c for c in idle if c.client and c.client[0] == host]
        evicted = mine[: max(0, len(mine) - MAX_IDLE_PER_CLIENT + 1)]
        over = len(others) + 1 - len(evicted) - MAX_CONNECTIONS
        if over > 0:
            evicted += [c for c in idle if c not in evicted][:over]
        for connection in evicted:
            connection._idle_since = None
            connection.transport.close()
        if evicted:
            self.logger.warning("webhook receiver: closed %d idle connection(s) to make room for %s", len(evicted), host)

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        # No request in flight: nothing to answer, only a socket to give back.
        if self.cycle is None or self.cycle.response_complete:
            self.logger.warning("webhook client %s sent no complete request headers in %.0f s; closed", self.client, HEADER_TIMEOUT_S)
            self.transport.close()


class InFlightLimit:
    """ASGI middleware: past MAX_IN_FLIGHT requests being answered, the next one gets 503
    with Retry-After at once rather than a queue (what --limit-concurrency did, without
    counting idle connections)."""

    def __init__(self, app, limit: int | None = None):
        self.app = app
        self.limit = limit
        self.in_flight = 0  # one event loop: no lock needed

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= (self.limit if self.limit is not None else MAX_IN_FLIGHT):
            from starlette.responses import JSONResponse

            response = JSONResponse(
                {"error": f"more than {self.limit or MAX_IN_FLIGHT} requests at once; retry in {RETRY_AFTER_S} s"},
                status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)},
            )
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def uvicorn_settings() -> dict:
    """The uvicorn.Config settings the receiver runs with (tests serve it the same way)."""
    return {"http": HeaderDeadlineProtocol, "timeout_keep_alive": KEEP_ALIVE_S, "server_header": False}


def uvicorn_options() -> list[str]:
    """The uvicorn command-line options the receiver runs with."""
    return [
        "--http", f"{__name__}:HeaderDeadlineProtocol",
        "--timeout-keep-alive", str(KEEP_ALIVE_S),
        "--no-server-header",
    ]
