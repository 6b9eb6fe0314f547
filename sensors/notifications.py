"""The notifications sensor: delivers the alert notifications owed
(`ops.notification_queue`) over their channels, records every attempt in
`ops.notifications`, and retries a failed one at later ticks with exponential backoff
until it is delivered or has used its attempts."""

import time
from datetime import timedelta

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from orchestration.settings import get_settings
from resources.alert_store import SQL
from resources.notify import AlertNotice, DeliveryError, deliver
from resources.postgres import PostgresResource
from resources.sql_files import statements

BATCH = 50
# Well inside Dagster's sensor evaluation timeout (60 s): what is left waits for the next tick.
TIME_BUDGET_S = 40.0
BACKOFF_BASE = timedelta(seconds=30)  # then 1, 2, 4 … minutes
BACKOFF_MAX = timedelta(hours=1)


def backoff(attempt: int) -> timedelta:
    return min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_MAX)


@sensor(
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Delivers each new or escalated alert to the configured channels (signed webhook, Slack, "
        "e-mail), records every attempt in ops.notifications, and retries a failed delivery with "
        "exponential backoff (30 s, 1 min, 2 min … up to 1 h) until WATTLINE_NOTIFY_MAX_ATTEMPTS. "
        "A failing channel never holds up the others."
    ),
)
def notifications_sensor(context: SensorEvaluationContext, postgres: PostgresResource):
    settings = get_settings()
    sql = statements(SQL)
    outcomes = {"delivered": 0, "retrying": 0, "failed": 0, "deferred": 0}
    started = time.monotonic()
    down: set[str] = set()  # channels that failed this tick: their other deliveries wait for the next
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql["due_notifications"], {"limit": BATCH})
        due = cur.fetchall()
        for delivery_id, alert_id, event, channel, attempts, *alert in due:
            if channel in down or time.monotonic() - started > TIME_BUDGET_S:
                outcomes["deferred"] += 1
                continue
            notice = AlertNotice(alert_id, event, *alert)
            attempt = attempts + 1
            try:
                detail, outcome = deliver(channel, notice, settings), "delivered"
            except DeliveryError as exc:
                detail, outcome = str(exc), "failed"
            except Exception as exc:  # noqa: BLE001 - a bug in one channel must not stop the others
                detail, outcome = f"{channel}: {type(exc).__name__}", "failed"
            cur.execute(sql["record_attempt"], {
                "delivery_id": delivery_id, "alert_id": alert_id, "alert_event": event, "channel": channel,
                "attempt": attempt, "outcome": outcome, "detail": detail[:500],
            })
            if outcome == "delivered":
                status = "delivered"
            else:
                down.add(channel)
                status = "failed" if attempt >= settings.notify_max_attempts else "pending"
                context.log.warning(f"alert {alert_id} via {channel}, attempt {attempt}: {detail}")
            outcomes["retrying" if status == "pending" else status] += 1
            cur.execute(sql["settle_delivery"], {
                "delivery_id": delivery_id, "status": status, "attempt": attempt, "backoff": backoff(attempt),
            })
    if not due:
        return SkipReason("no notification due")
    return SkipReason(
        f"{outcomes['delivered']} delivered, {outcomes['retrying']} to retry, {outcomes['failed']} given up, "
        f"{outcomes['deferred']} deferred to the next tick"
    )
