"""Client for the meter head-end API (readings, facilities, meters)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO, ClassVar

from resources.http import SourceApiResource, SourceError, StreamedBody, get_checked, safe_url

READING_COLUMNS = (
    "ts",
    "meter_id",
    "facility_id",
    "interval_s",
    "energy_kwh",
    "active_power_kw",
    "reactive_power_kvar",
    "voltage_v",
    "current_a",
    "power_factor",
    "frequency_hz",
    "energy_source",
)


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


class TelemetryApiResource(SourceApiResource):
    """The meter head-end API: the facility and meter registry, and `GET /v1/readings`
    streamed as CSV for a time window."""

    url_setting: ClassVar[str] = "telemetry_api_url"
    feed: ClassVar[str] = "meter head-end API"

    def facilities(self) -> list[dict]:
        """The facility registry (`GET /v1/facilities`)."""
        return self._registry("facilities", ("facility_id", "name", "timezone"))

    def meters(self) -> list[dict]:
        """The meter registry (`GET /v1/meters`)."""
        return self._registry("meters", ("meter_id", "facility_id"))

    def _registry(self, entity: str, required: tuple[str, ...]) -> list[dict]:
        session = self.session()
        url = f"{self.resolved_base_url()}/v1/{entity}"
        shown = safe_url(url)
        try:
            response = get_checked(
                session, url, params=None, timeout=self.timeout,
                expected=f"a JSON list of {entity}",
            )
            try:
                rows = response.json()
            except ValueError:
                raise SourceError(f"GET {shown} answered a body that is not JSON; expected a JSON list of {entity}") from None
        finally:
            session.close()
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise SourceError(f"GET {shown} answered {type(rows).__name__}; expected a JSON list of {entity}")
        incomplete = [r for r in rows if any(not r.get(key) for key in required)]
        if incomplete:
            raise SourceError(f"GET {shown}: {len(incomplete)} {entity} lack one of {required}, e.g. {incomplete[0]}")
        if not rows:
            # An empty registry is far likelier an API fault than a fleet that vanished:
            # loading it would retire every meter.
            raise SourceError(f"GET {shown} listed no {entity}; refusing to mark every one inactive")
        return rows

    @contextlib.contextmanager
    def stream_readings(self, start: datetime, end: datetime) -> Iterator[BinaryIO]:
        """The readings with start <= ts < end as a CSV byte stream (header first).

        The body is streamed, never held in memory: a mid-stream failure (a cut, a
        silence longer than read_timeout_s) is not retried, since the consumer has rows
        of it already; it raises `SourceError` naming the URL, and the consumer must then
        write nothing. So does the consumer's own complaint about the body.
        """
        session = self.session()
        url = f"{self.resolved_base_url()}/v1/readings"
        response = get_checked(
            session,
            url,
            params={"start": _iso(start), "end": _iso(end), "format": "csv"},
            timeout=self.timeout,
            expected="CSV meter readings",
            stream=True,
        )
        body = StreamedBody(response, "CSV meter readings")
        try:
            content_type = response.headers.get("Content-Type", "")
            if "csv" not in content_type:
                raise SourceError(f"GET {safe_url(response.url)} answered Content-Type {content_type!r}; expected text/csv")
            try:
                yield body
            except SourceError as exc:
                if exc is body.failure:
                    raise
                # The consumer's complaint about the body (e.g. its header): say whose body.
                raise SourceError(f"GET {safe_url(response.url)} answered a body that is not CSV meter readings: {exc}") from exc
            except Exception:
                # The read failed inside COPY, which reports it as a database error.
                if body.failure is not None:
                    raise body.failure from body.failure.__cause__
                raise
        finally:
            response.close()
            session.close()
