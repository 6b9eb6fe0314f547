"""The alert store, `ops.alerts`: one alert per condition (its key) while the condition
lasts, with its lifecycle active → acknowledged → resolved. Sensors raise and resolve;
operators list and acknowledge (`wattline alerts`)."""

import json
from dataclasses import dataclass, field

from psycopg2.extensions import cursor as Cursor

from resources.sql_files import statements

SQL = "alerts.sql"


@dataclass(frozen=True)
class Condition:
    """Something wrong now. `alert_key` names the condition (one alert while it lasts);
    `level` 1–3 orders how bad (warning, critical, exceeded / low, medium, high)."""

    alert_key: str
    kind: str
    subject: str
    level: int
    level_name: str
    message: str
    details: dict = field(default_factory=dict)


def raise_alert(cur: Cursor, condition: Condition, channels: list[str] = ()) -> tuple[int, str]:
    """Open, refresh or escalate the condition's alert; returns (alert id, raised |
    escalated | unchanged). Concurrent raisers of one key end with one alert. A new or
    escalated alert is queued for each of `channels`, in the same transaction."""
    params = {
        "alert_key": condition.alert_key, "kind": condition.kind, "subject": condition.subject,
        "level": condition.level, "level_name": condition.level_name, "message": condition.message,
        "details": json.dumps(condition.details, default=str),
    }
    cur.execute(statements(SQL)["raise"], params)
    row = cur.fetchone()
    if row is None:  # another raiser opened it between our look and our insert: refresh it
        cur.execute(statements(SQL)["raise"], params)
        row = cur.fetchone()
    alert_id, outcome = row
    if outcome != "unchanged" and channels:
        event = "raised" if outcome == "raised" else f"escalated:{condition.level_name}"
        cur.execute(statements(SQL)["enqueue"], {"alert_id": alert_id, "alert_event": event, "channels": list(channels)})
    return alert_id, outcome


def resolve_alert(cur: Cursor, alert_key: str, resolution: str) -> list[int]:
    cur.execute(statements(SQL)["resolve"], {"alert_key": alert_key, "resolution": resolution})
    return [r[0] for r in cur.fetchall()]


def resolve_cleared(cur: Cursor, kind: str, current_keys: list[str], resolution: str) -> list[tuple[int, str]]:
    """Resolve the open alerts of `kind` whose condition is not among `current_keys`."""
    cur.execute(statements(SQL)["resolve_cleared"], {"kind": kind, "current_keys": current_keys, "resolution": resolution})
    return cur.fetchall()


def acknowledge(cur: Cursor, alert_id: int, by: str) -> str:
    """Acknowledge an active alert; returns what happened, in words, for the operator."""
    cur.execute(statements(SQL)["acknowledge"], {"alert_id": alert_id, "by": by})
    if cur.fetchone():
        return f"alert {alert_id} acknowledged by {by}"
    cur.execute(statements(SQL)["alert"], {"alert_id": alert_id})
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"no alert {alert_id}")
    raise ValueError(f"alert {alert_id} is {row[1]}: only an active alert can be acknowledged")


def list_alerts(cur: Cursor, include_resolved: bool = False, limit: int = 100) -> list[dict]:
    cur.execute(statements(SQL)["list"], {"all": include_resolved, "limit": limit})
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
