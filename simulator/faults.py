"""Faults injected into the simulated feeds: error bursts, rate limits, slow, cut and
malformed responses, so tests can prove a source client retries what is transient and
fails cleanly on what is not.

A fault answers the next `count` requests whose path starts with its prefix, then is
spent. Faults on overlapping prefixes queue up in the order they were set, so "two 503s,
then a cut body" is two faults. Each counts the requests it hit: the only way to see
from outside that a client that succeeded actually retried.

Kinds:
- error: status 500–599 (default 503), a JSON body saying it is injected, optionally a
  Retry-After;
- rate_limit: 429 with `Retry-After: retry_after_s` (default 1);
- slow: waits delay_s before the response starts, or, with keep_fraction, stalls that
  far into the body, so a client with a shorter read timeout gives up;
- truncate: the true headers (Content-Length, or chunked), then keep_fraction of the
  body (default 0.5), then the connection drops;
- malformed: a body of the same content type that does not parse (JSON that breaks off,
  a CSV whose header lost its commas), with a Content-Length that matches it.

The middleware is plain ASGI, not Starlette's BaseHTTPMiddleware: a request no fault
matches passes straight through and a streamed body keeps streaming. The health check
and the simulator's own control routes (`/v1/sim/...`) are never faulted: they are the
test harness talking, not a feed.
"""

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass, field, fields

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator.params import BadRequest

KINDS = ("error", "rate_limit", "slow", "truncate", "malformed")
EXEMPT_PREFIXES = ("/healthz", "/v1/sim/")
MAX_DELAY_S = 300.0
# Which optional parameter each kind accepts; any other is a mistake worth a 422, not
# a silently ignored setting.
PARAMETERS = {
    "error": {"status", "retry_after_s"},
    "rate_limit": {"retry_after_s"},
    "slow": {"delay_s", "keep_fraction"},
    "truncate": {"keep_fraction"},
    "malformed": set(),
}
OPTIONAL = ("status", "retry_after_s", "delay_s", "keep_fraction")


@dataclass(frozen=True)
class Fault:
    """What to do to the next `count` requests under `path_prefix`. Invalid values raise
    ValueError with the reason (the HTTP API answers it as a 422)."""

    path_prefix: str
    kind: str  # error | rate_limit | slow | truncate | malformed
    count: int = 1
    status: int | None = None  # error: 500–599, default 503
    retry_after_s: int | None = None  # rate_limit (default 1) or error: whole seconds
    delay_s: float | None = None  # slow: required
    keep_fraction: float | None = None  # truncate: default 0.5; slow: unset = stall before the headers

    def __post_init__(self) -> None:
        if not isinstance(self.path_prefix, str) or not self.path_prefix.startswith("/"):
            raise ValueError(f"path_prefix must be a path starting with '/', got {self.path_prefix!r}")
        if any(self.path_prefix.startswith(p) for p in EXEMPT_PREFIXES):
            raise ValueError(f"{self.path_prefix!r} is a control route; control routes are never faulted")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not _is_int(self.count) or self.count < 1:
            raise ValueError(f"count must be a whole number of requests, at least 1, got {self.count!r}")
        misplaced = [name for name in OPTIONAL if getattr(self, name) is not None and name not in PARAMETERS[self.kind]]
        if misplaced:
            allowed = ", ".join(sorted(PARAMETERS[self.kind])) or "no other parameter"
            raise ValueError(f"{', '.join(misplaced)} does not apply to {self.kind} faults (they take {allowed})")
        defaults = {"error": {"status": 503}, "rate_limit": {"retry_after_s": 1}, "truncate": {"keep_fraction": 0.5}}
        for name, value in defaults.get(self.kind, {}).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.status is not None and (not _is_int(self.status) or not 500 <= self.status <= 599):
            raise ValueError(f"status must be a server error, 500–599, got {self.status!r}")
        if self.retry_after_s is not None and (not _is_int(self.retry_after_s) or self.retry_after_s < 0):
            # Retry-After carries whole seconds (RFC 9110 delay-seconds).
            raise ValueError(f"retry_after_s must be a whole number of seconds >= 0, got {self.retry_after_s!r}")
        if self.kind == "slow":
            if self.delay_s is None:
                raise ValueError("a slow fault needs delay_s, the seconds to hold the response")
            if not _is_number(self.delay_s) or not 0 < self.delay_s <= MAX_DELAY_S:
                raise ValueError(f"delay_s must be a number of seconds in (0, {MAX_DELAY_S:g}], got {self.delay_s!r}")
        if self.keep_fraction is not None and (not _is_number(self.keep_fraction) or not 0 <= self.keep_fraction < 1):
            raise ValueError(f"keep_fraction must be a share of the body in [0, 1), got {self.keep_fraction!r}")

    def matches(self, path: str) -> bool:
        return path.startswith(self.path_prefix)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class FaultState:
    """A fault as set, and the requests it has hit so far (monotonic clock times)."""

    id: int
    fault: Fault
    hit_times: tuple[float, ...] = ()

    @property
    def hits(self) -> int:
        return len(self.hit_times)

    @property
    def remaining(self) -> int:
        return self.fault.count - self.hits


@dataclass
class _Entry:
    id: int
    fault: Fault
    hit_times: list[float] = field(default_factory=list)


class FaultBook:
    """The faults set so far and their hits, safe to use from several request threads."""

    def __init__(self, faults=()):
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []
        self._next_id = 1
        for fault in faults:
            self.add(fault)

    def add(self, fault: Fault) -> FaultState:
        with self._lock:
            entry = _Entry(self._next_id, fault)
            self._next_id += 1
            self._entries.append(entry)
            return _state(entry)

    def take(self, path: str) -> tuple[Fault, int] | None:
        """The first unspent fault for `path` and which of its hits this is (1-based),
        counted as hit; None when no fault applies."""
        if any(path.startswith(p) for p in EXEMPT_PREFIXES):
            return None
        with self._lock:
            for entry in self._entries:
                if len(entry.hit_times) < entry.fault.count and entry.fault.matches(path):
                    entry.hit_times.append(time.monotonic())
                    return entry.fault, len(entry.hit_times)
        return None

    def snapshot(self) -> list[FaultState]:
        """Every fault in the order set, spent ones included (their hits are the record)."""
        with self._lock:
            return [_state(entry) for entry in self._entries]

    def clear(self) -> int:
        """Forget every fault; returns how many there were."""
        with self._lock:
            cleared = len(self._entries)
            self._entries.clear()
            return cleared


def _state(entry: _Entry) -> FaultState:
    return FaultState(entry.id, entry.fault, tuple(entry.hit_times))


def fault_json(state: FaultState) -> dict:
    fault = state.fault
    body = {"id": state.id, "path_prefix": fault.path_prefix, "kind": fault.kind, "count": fault.count}
    body.update({name: getattr(fault, name) for name in OPTIONAL if getattr(fault, name) is not None})
    return {**body, "hits": state.hits, "remaining": state.remaining}


# --- the middleware ----------------------------------------------------------------


class InjectedCut(Exception):
    """Raised after part of a body to make the server drop the connection: ASGI has no
    message for "close without finishing", an exception is the only way."""


class _QuietCuts(logging.Filter):
    """Uvicorn logs every exception from the app with its traceback; an injected cut is
    the point of the exercise, not an error worth a screenful."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], InjectedCut))


_QUIET_CUTS = _QuietCuts()


class FaultMiddleware:
    """Applies the book's faults to matching HTTP requests; everything else passes through."""

    def __init__(self, app, book: FaultBook):
        self.app = app
        self.book = book
        logging.getLogger("uvicorn.error").addFilter(_QUIET_CUTS)  # idempotent

    async def __call__(self, scope, receive, send) -> None:
        taken = self.book.take(scope["path"]) if scope["type"] == "http" else None
        if taken is None:
            await self.app(scope, receive, send)
            return
        fault, hit = taken
        note = f"injected {fault.kind} fault on {fault.path_prefix} ({hit} of {fault.count})"
        if fault.kind == "error":
            headers = [] if fault.retry_after_s is None else [(b"retry-after", str(fault.retry_after_s).encode())]
            await _answer(send, fault.status, {"detail": f"{note}: {fault.status}", "injected": True}, headers)
        elif fault.kind == "rate_limit":
            body = {"detail": f"{note}: rate limited, retry after {fault.retry_after_s} s", "injected": True}
            await _answer(send, 429, body, [(b"retry-after", str(fault.retry_after_s).encode())])
        elif fault.kind == "slow" and fault.keep_fraction is None:
            await asyncio.sleep(fault.delay_s)
            await self.app(scope, receive, send)
        else:
            # The rest reshape the real response, which needs its length: collect it. The
            # simulator's bodies are bounded by its window limits, so this stays small.
            start, body = await _collect(self.app, scope, receive)
            if fault.kind == "malformed":
                await _send_malformed(send, start, body)
                return
            kept = int(len(body) * fault.keep_fraction)
            await send(start)
            await send({"type": "http.response.body", "body": body[:kept], "more_body": True})
            if fault.kind == "truncate":
                raise InjectedCut(f"{note}: {kept} of {len(body)} bytes sent")
            await asyncio.sleep(fault.delay_s)
            await send({"type": "http.response.body", "body": body[kept:]})


async def _answer(send, status: int, body: dict, headers: list[tuple[bytes, bytes]]) -> None:
    raw = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": raw})


async def _collect(app, scope, receive) -> tuple[dict, bytes]:
    messages: list[dict] = []

    async def keep(message: dict) -> None:
        messages.append(message)

    await app(scope, receive, keep)
    start = next(m for m in messages if m["type"] == "http.response.start")
    return start, b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


async def _send_malformed(send, start: dict, body: bytes) -> None:
    headers = dict(start.get("headers", []))
    garbage = malformed(headers.get(b"content-type", b"").decode("latin-1"), body)
    if b"content-length" in headers:
        headers[b"content-length"] = str(len(garbage)).encode()
    await send({**start, "headers": list(headers.items())})
    await send({"type": "http.response.body", "body": garbage})


def malformed(content_type: str, body: bytes) -> bytes:
    """A body of `content_type` that does not parse, shaped like the faults seen in the
    wild: JSON that stops mid-object, a CSV exported with another separator."""
    if "csv" in content_type:
        header, newline, rest = body.partition(b"\n")
        return header.replace(b",", b";") + newline + rest
    if "json" in content_type:
        return b'{"injected": "malformed body", "data": ' + body[: max(1, len(body) // 2)]
    return b"\x00injected malformed body\xff"


# --- the control API ---------------------------------------------------------------


def routes(book: FaultBook) -> list[Route]:
    async def list_faults(request: Request):
        """GET /v1/sim/faults: every fault set, in order, with its hits and what remains."""
        return JSONResponse([fault_json(state) for state in book.snapshot()])

    async def add_fault(request: Request):
        """POST /v1/sim/faults {"path_prefix", "kind", "count", ...} → 201 and the fault;
        422 with the reason for anything that would not inject what was meant."""
        expected = "expected a JSON object with path_prefix, kind, count (and status, retry_after_s, delay_s or keep_fraction)"
        try:
            data = await request.json()
        except json.JSONDecodeError:
            raise BadRequest(expected, status=422) from None
        if not isinstance(data, dict) or not {"path_prefix", "kind", "count"} <= set(data):
            raise BadRequest(expected, status=422)
        unknown = sorted(set(data) - {f.name for f in fields(Fault)})
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(unknown)}; {expected}", status=422)
        try:
            state = book.add(Fault(**data))
        except ValueError as exc:
            raise BadRequest(str(exc), status=422) from None
        return JSONResponse(fault_json(state), status_code=201)

    async def clear_faults(request: Request):
        """DELETE /v1/sim/faults: forget every fault (spent or not)."""
        return JSONResponse({"cleared": book.clear()})

    return [
        Route("/v1/sim/faults", list_faults, methods=["GET"]),
        Route("/v1/sim/faults", add_fault, methods=["POST"]),
        Route("/v1/sim/faults", clear_faults, methods=["DELETE"]),
    ]
