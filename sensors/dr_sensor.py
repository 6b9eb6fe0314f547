"""The DR sensor: turns each new event version in the inbox `ops.dr_events` into a
dynamic partition and a run of `dr_plan_job` for it."""

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from orchestration.jobs import dr_plan_job
from orchestration.partitions import dr_event_partitions, dr_partition_key
from resources.postgres import PostgresResource
from resources.sql_files import statements

# Event versions per evaluation; the next evaluation, seconds later, takes the rest. A
# whole burst goes in one evaluation: each evaluation's runs wait for the previous
# ones' slots (two), so a burst split over several evaluations is planned in waves.
BATCH = 2000
# Plan runs the instance lets run side by side (tag wattline/queue=dr, its limit in the
# generated dagster.yaml): what the sensor spreads the new versions over.
PLAN_RUNS = 2
# A utility waits on the plan: it goes ahead of the platform's own runs in the queue, and
# has a run slot they cannot take (their wattline/queue=background limit).
DR_RUN_TAGS = {"dagster/priority": "10", "wattline/queue": "dr"}


@sensor(
    job=dr_plan_job,
    minimum_interval_seconds=2,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Reads event versions the webhook receiver stored in ops.dr_events after its cursor "
        "(the last inbox id seen), adds each as a partition of the dr_events partitions and "
        "requests a dr_plan_job run for it (several new versions share up to two runs, each a "
        "partition range), once the models a plan reads exist. While a plan run waits in the queue, "
        "new versions wait in the inbox and go together into the next run. The run key is the event "
        "id and version (or the range's first and last): a redelivery never plans twice, a revised "
        "event plans again. Versions no longer waiting (cancelled by an OpenADR DELETE, or planned already) get a partition but no run."
    ),
)
def dr_events_sensor(context: SensorEvaluationContext, postgres: PostgresResource):
    cursor = int(context.cursor or 0)
    sql = statements("dr_inbox.sql")
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql["new_events"], {"cursor": cursor, "batch": BATCH})
        rows = cur.fetchall()
        if rows:
            cur.execute(sql["missing_plan_inputs"])
            missing = [relation for (relation,) in cur.fetchall()]
    if not rows:
        return SkipReason(f"no DR event after inbox id {cursor}")
    if missing:
        # The cursor stays: the events wait in the inbox, and plan once the models exist.
        return SkipReason(f"{len(rows)} DR event version(s) wait: the plan reads {', '.join(missing)}, not built yet")
    if _plan_run_waiting(context):
        # A run per evaluation would queue faster than runs start (each costs seconds of
        # process start) and serialise a burst; the versions wait and share the next run.
        return SkipReason(f"{len(rows)} DR event version(s) wait for the queued plan run to start; they share the next")
    keys = [dr_partition_key(event_id, version) for _, event_id, version, _ in rows]
    return SensorResult(
        run_requests=plan_requests(rows),
        dynamic_partitions_requests=[dr_event_partitions.build_add_request(keys)],
        cursor=str(rows[-1][0]),
    )


def _plan_run_waiting(context: SensorEvaluationContext) -> bool:
    return context.instance.get_runs_count(RunsFilter(
        job_name=dr_plan_job.name, statuses=[DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED],
    )) > 0


def plan_requests(rows: list[tuple]) -> list[RunRequest]:
    """Runs for new inbox rows (inbox id, event id, version, status), in order: the rows
    split into at most PLAN_RUNS runs of consecutive versions, each a range of the
    partitions this evaluation adds (one version alone is its partition). Each run costs
    seconds of process start and code-location load; a thousand events a run each would
    hold the run queue for the better part of an hour. Versions no longer waiting (not
    'received': cancelled, or planned already) get no run and end a range."""
    plannable = sum(1 for row in rows if row[3] == "received")
    size = max(1, -(-plannable // PLAN_RUNS))
    requests, batch = [], []

    def flush() -> None:
        if not batch:
            return
        first, last = batch[0], batch[-1]
        tags = {**DR_RUN_TAGS, "wattline/dr_event": first[1], "wattline/dr_version": first[2]}
        if len(batch) == 1:
            requests.append(RunRequest(run_key=dr_partition_key(first[1], first[2]), partition_key=dr_partition_key(first[1], first[2]), tags=tags))
        else:
            start, end = dr_partition_key(first[1], first[2]), dr_partition_key(last[1], last[2])
            requests.append(RunRequest(run_key=f"{start}…{end}", tags={
                **DR_RUN_TAGS, "wattline/dr_events": str(len(batch)),
                ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end,
            }))
        batch.clear()

    for row in rows:
        # Only a version still 'received' waits for a plan: one already planned (by the demo,
        # or a run an earlier cursor requested) or cancelled is never planned again.
        if row[3] != "received":
            flush()
            continue
        batch.append(row)
        if len(batch) == size:
            flush()
    flush()
    return requests
