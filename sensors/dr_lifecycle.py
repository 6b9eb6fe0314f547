"""The DR lifecycle sensor: moves each planned event on, planned → active → completed |
failed, by requesting the runs that dispatch and measure it and by closing it once its
performance is measured."""

import math
from datetime import UTC, datetime, timedelta

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from orchestration.automation import LATE_READINGS
from orchestration.jobs import dr_dispatch_job, incremental_marts_job
from orchestration.partitions import dr_partition_key
from orchestration.runs import hourly_range_tags
from resources.postgres import PostgresResource
from resources.sql_files import statements
from sensors.dr_sensor import DR_RUN_TAGS

# Dispatch this long before the plan's first interval: the BMS needs the schedule first.
DISPATCH_LEAD = timedelta(minutes=2)
# After the event: the telemetry schedule reloads a closed hour for LATE_READINGS; then
# the marts for the event's hours are rebuilt, and again every MEASURE_EVERY until the
# telemetry is complete or MEASURE_DEADLINE has passed.
MEASURE_AFTER = LATE_READINGS + timedelta(minutes=5)
MEASURE_EVERY = timedelta(minutes=30)
MEASURE_DEADLINE = timedelta(hours=6)


@sensor(
    jobs=[dr_dispatch_job, incremental_marts_job],
    minimum_interval_seconds=15,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Moves demand-response events through their lifecycle in ops.dr_events: requests the dispatch "
        f"run {DISPATCH_LEAD.seconds // 60} min before a planned event's first interval (pre-cooling included); "
        "fails an event that ended before it was planned or dispatched; after an active event ends, "
        "requests the marts rebuild for its hours (every 30 min until its telemetry is complete); and "
        "closes it completed or failed from marts.fct_dr_event_performance, or failed when its "
        "telemetry is still incomplete 6 h after the end."
    ),
)
def dr_lifecycle_sensor(context: SensorEvaluationContext, postgres: PostgresResource):
    sql = statements("dr_inbox.sql")
    now = datetime.now(UTC)
    requests, notes = [], []
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql["due_dispatches"], {"now": now, "lead": DISPATCH_LEAD})
        for event_id, version in cur.fetchall():
            key = dr_partition_key(event_id, version)
            requests.append(RunRequest(run_key=f"dispatch:{key}", job_name=dr_dispatch_job.name, partition_key=key, tags=DR_RUN_TAGS))
        cur.execute(sql["fail_missed"], {"now": now})
        notes += [f"{e}@{v} failed: ended before dispatch" for e, v in cur.fetchall()]

        cur.execute(sql["performance_exists"])
        measured = cur.fetchone()[0]
        cur.execute(sql["active_events"])
        for event_id, version, start, end in cur.fetchall():
            key = dr_partition_key(event_id, version)
            since_end = now - end
            if since_end < MEASURE_AFTER:
                continue
            if measured:
                cur.execute(sql["event_performance"], {"event_id": event_id, "version": version})
                outcome = _outcome(cur.fetchall())
                if outcome is not None:
                    cur.execute(sql["close_event"], {"event_id": event_id, "version": version, "status": outcome[0], "reason": outcome[1]})
                    notes.append(f"{key} {outcome[0]}: {outcome[1]}")
                    continue
            if since_end > MEASURE_DEADLINE:
                reason = f"telemetry for the event window still incomplete {MEASURE_DEADLINE.seconds // 3600} h after it ended"
                cur.execute(sql["close_event"], {"event_id": event_id, "version": version, "status": "failed", "reason": reason})
                notes.append(f"{key} failed: {reason}")
                continue
            attempt = math.floor((since_end - MEASURE_AFTER) / MEASURE_EVERY)
            first_hour = start.replace(minute=0, second=0, microsecond=0)
            last_hour = end.replace(minute=0, second=0, microsecond=0) + (timedelta(hours=1) if end.minute or end.second else timedelta())
            requests.append(RunRequest(
                run_key=f"measure:{key}:{attempt}",
                job_name=incremental_marts_job.name,
                tags={**hourly_range_tags(first_hour, last_hour), "wattline/dr_event": event_id, "wattline/dr_version": version},
            ))
    if not requests and not notes:
        return SkipReason("no DR event to dispatch, measure or close")
    for note in notes:
        context.log.info(note)
    return SensorResult(run_requests=requests)


def _outcome(rows: list[tuple]) -> tuple[str, str] | None:
    """(status, reason) once every facility is measured; None while any is pending."""
    if not rows or any(status == "pending" for _, status, _, _ in rows):
        return None
    reduced = sum(r or 0.0 for _, _, r, _ in rows)
    target = sum(t or 0.0 for _, _, _, t in rows)
    failed = [f for f, status, _, _ in rows if status == "failed"]
    summary = f"reduced {reduced:.1f} of {target:.1f} kWh asked" + (f" ({reduced / target:.0%})" if target else "")
    if failed:
        return "failed", f"{summary}; short of the target: {', '.join(failed)}"
    return "completed", summary
