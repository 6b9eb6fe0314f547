"""How `wattline up` serves the DR webhook receiver: uvicorn on loopback, bounded
against slow and greedy clients.

A utility's delivery is a few hundred bytes sent at once. A client that dribbles its
request headers (slowloris) would otherwise hold a connection for as long as it likes:
uvicorn times out only idle keep-alive connections, not a request that is still
arriving. Bodies have their own deadline in the app (sensors/webhook_app.py answers
408), and past LIMIT_CONCURRENCY open connections uvicorn answers 503 at once.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_S = 10.0  # from connection (or the previous response) to the last header
LIMIT_CONCURRENCY = 64  # connections and requests at once; the bursts seen come over 8
KEEP_ALIVE_S = 5


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers have not
    all arrived within HEADER_TIMEOUT_S."""

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

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


def uvicorn_options() -> list[str]:
    """The uvicorn command-line options the receiver runs with."""
    return [
        "--http", f"{__name__}:HeaderDeadlineProtocol",
        "--limit-concurrency", str(LIMIT_CONCURRENCY),
        "--timeout-keep-alive", str(KEEP_ALIVE_S),
        "--no-server-header",
    ]
