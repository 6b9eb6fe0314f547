"""Alert notifications over the configured channels: a generic webhook signed per
Standard Webhooks, a Slack-compatible incoming webhook, and e-mail over SMTP.

Each delivery is one attempt with a short timeout (HTTP: urllib3 `Retry` for a quick
transient retry within it); the notifications sensor retries a failed one at later
ticks with exponential backoff, so a slow or failing channel never holds up another
channel or the sensor. Nothing here logs or returns a channel's URL or credentials.
"""

import json
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import requests

from orchestration.settings import WattlineSettings
from resources.http import build_session

TIMEOUT_S = (3.0, 10.0)


class DeliveryError(RuntimeError):
    """The channel did not take the notification; the message is safe to record."""


@dataclass(frozen=True)
class AlertNotice:
    alert_id: int
    event: str  # raised | escalated:<level>
    kind: str
    subject: str
    level: int
    level_name: str
    status: str
    message: str
    raised_at: datetime

    @property
    def title(self) -> str:
        what = "escalated to " + self.event.split(":", 1)[1] if self.event.startswith("escalated") else "raised"
        return f"[Wattline] {self.level_name} {self.kind} alert {what}: {self.subject}"

    def payload(self) -> dict:
        return {
            "type": "alert.escalated" if self.event.startswith("escalated") else "alert.raised",
            "alert": {
                "id": self.alert_id, "kind": self.kind, "subject": self.subject, "level": self.level,
                "level_name": self.level_name, "status": self.status, "message": self.message,
                "raised_at": self.raised_at.isoformat(),
            },
        }


def deliver(channel: str, notice: AlertNotice, settings: WattlineSettings) -> str:
    """Send `notice` over `channel`; returns what the channel answered, raises DeliveryError."""
    if channel == "webhook":
        return _webhook(notice, settings)
    if channel == "slack":
        return _post(settings.notify_slack_url, json.dumps({"text": f"*{notice.title}*\n{notice.message}"}).encode(), {}, "slack")
    if channel == "email":
        return _email(notice, settings)
    raise DeliveryError(f"unknown channel {channel!r}")


def _webhook(notice: AlertNotice, settings: WattlineSettings) -> str:
    from standardwebhooks.webhooks import Webhook

    body = json.dumps(notice.payload(), separators=(",", ":"))
    # The same id for every attempt at one alert event: the receiver can drop repeats.
    msg_id = f"alert_{notice.alert_id}_{notice.event.replace(':', '_')}"
    now = datetime.now(UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(settings.notify_webhook_secret.get_secret_value()).sign(msg_id, now, body),
    }
    return _post(settings.notify_webhook_url, body.encode(), headers, "webhook")


def _post(url: str, body: bytes, headers: dict, channel: str) -> str:
    # POST retried once within the attempt: a notification repeated is harmless (the webhook's id is stable).
    with build_session(retries=1, backoff_factor=0.2, methods=frozenset({"POST"})) as session:
        try:
            answer = session.post(url, data=body, headers={"content-type": "application/json", **headers}, timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            raise DeliveryError(f"{channel}: no answer ({type(exc).__name__})") from None
    if not 200 <= answer.status_code < 300:
        raise DeliveryError(f"{channel}: answered {answer.status_code}")
    return f"{channel}: answered {answer.status_code}"


def _email(notice: AlertNotice, settings: WattlineSettings) -> str:
    parts = urlsplit(settings.notify_smtp_url.get_secret_value())
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise DeliveryError("email: WATTLINE_NOTIFY_SMTP_URL must be smtp://host[:port] or smtps://host[:port]")
    recipients = [r.strip() for r in (settings.notify_email_to or "").split(",") if r.strip()]
    message = EmailMessage()
    message["Subject"] = notice.title
    message["From"] = settings.notify_email_from
    message["To"] = ", ".join(recipients)
    message.set_content(f"{notice.message}\n\nAlert {notice.alert_id} ({notice.status}), raised {notice.raised_at:%Y-%m-%d %H:%M} UTC.\n"
                        "Acknowledge it with: wattline alerts ack " + str(notice.alert_id))
    try:
        if parts.scheme == "smtps":
            server = smtplib.SMTP_SSL(parts.hostname, parts.port or 465, timeout=TIMEOUT_S[1], context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=TIMEOUT_S[1])
        with server:
            if parts.scheme == "smtp" and server.has_extn("starttls"):
                server.starttls(context=ssl.create_default_context())
            if parts.username:
                server.login(unquote(parts.username), unquote(parts.password or ""))
            refused = server.send_message(message, to_addrs=recipients)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"email: {type(exc).__name__}: {str(exc)[:200]}") from None
    if refused:
        raise DeliveryError(f"email: refused for {', '.join(sorted(refused))}")
    return f"email: sent to {len(recipients)} recipient(s)"
