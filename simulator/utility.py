"""The simulated utility: calls demand-response events by the signed webhook a real
utility sends (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
`webhook-signature`), so the receiver meets them exactly as in production."""

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests

DR_NOTIFICATION_PATH = "/webhooks/utility/dr-notification"


@dataclass(frozen=True)
class DrCall:
    event_id: str
    facility_ids: list[str]
    start: datetime
    end: datetime
    reduction_pct: float | None = None
    reduction_kw: float | None = None
    version: str | None = None

    def body(self) -> dict:
        body = {
            "event_id": self.event_id,
            "facility_ids": list(self.facility_ids),
            "event_start": self.start.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "event_end": self.end.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        if self.reduction_pct is not None:
            body["target_reduction_percentage"] = self.reduction_pct
        if self.reduction_kw is not None:
            body["target_reduction_kw"] = self.reduction_kw
        if self.version is not None:
            body["version"] = self.version
        return body


def signed_request(secret: str, body: dict, msg_id: str | None = None, at: datetime | None = None) -> tuple[bytes, dict]:
    """The raw body and headers of a Standard Webhooks delivery of `body`."""
    from standardwebhooks.webhooks import Webhook

    raw = json.dumps(body, separators=(",", ":"))
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = (at or datetime.now(UTC)).astimezone(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, raw),
    }
    return raw.encode(), headers


def call_event(
    receiver_url: str, secret: str, call: DrCall, *, session: requests.Session | None = None, timeout: float = 10.0,
) -> requests.Response:
    """POST the signed event to the receiver; returns its answer (202 when stored)."""
    raw, headers = signed_request(secret, call.body())
    poster = session or requests
    return poster.post(f"{receiver_url.rstrip('/')}{DR_NOTIFICATION_PATH}", data=raw, headers=headers, timeout=timeout)


def next_quarter_hour(after: datetime, lead: timedelta) -> datetime:
    """The first 15-minute boundary at least `lead` after `after` (events start on one)."""
    t = (after + lead).astimezone(UTC)
    floor = t.replace(minute=t.minute - t.minute % 15, second=0, microsecond=0)
    return floor if floor >= after + lead else floor + timedelta(minutes=15)
