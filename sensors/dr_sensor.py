"""The DR sensor: turns each new event version in the inbox `ops.dr_events` into a
dynamic partition and a run of `dr_plan_job` for it."""

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from orchestration.jobs import dr_plan_job
from orchestration.partitions import dr_event_partitions, dr_partition_key
from resources.postgres import PostgresResource
from resources.sql_files import statements

BATCH = 200  # events per evaluation; the next evaluation, seconds later, takes the rest
# A utility waits on the plan: it goes ahead of any backfill runs in the queue.
DR_RUN_TAGS = {"dagster/priority": "10"}


@sensor(
    job=dr_plan_job,
    minimum_interval_seconds=2,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Reads event versions the webhook receiver stored in ops.dr_events after its cursor "
        "(the last inbox id seen), adds each as a partition of the dr_events partitions and "
        "requests a dr_plan_job run for it. The run key is the event id and version: a "
        "redelivery never plans twice, a revised event plans again. Cancelled versions "
        "(an OpenADR DELETE) get a partition but no run."
    ),
)
def dr_events_sensor(context: SensorEvaluationContext, postgres: PostgresResource):
    cursor = int(context.cursor or 0)
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(statements("dr_inbox.sql")["new_events"], {"cursor": cursor, "batch": BATCH})
        rows = cur.fetchall()
    if not rows:
        return SkipReason(f"no DR event after inbox id {cursor}")
    keys = [dr_partition_key(event_id, version) for _, event_id, version, _ in rows]
    requests = [
        RunRequest(run_key=key, partition_key=key, tags={**DR_RUN_TAGS, "wattline/dr_event": event_id, "wattline/dr_version": version})
        for key, (_, event_id, version, status) in zip(keys, rows, strict=True)
        if status != "cancelled"
    ]
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[dr_event_partitions.build_add_request(keys)],
        cursor=str(rows[-1][0]),
    )
