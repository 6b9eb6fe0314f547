"""Run-failure alerts: a failed run raises one alert per job and partition (a retry that
fails again refreshes it), and the next successful run of the same job and partition
resolves it."""

from dagster import (
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    run_failure_sensor,
    run_status_sensor,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from orchestration.settings import get_settings
from resources.alert_store import Condition, raise_alert, resolve_alert
from resources.postgres import PostgresResource

KIND = "run_failure"


def run_scope(run: DagsterRun) -> str:
    """What the run covered: its partition, its partition range, or the whole job."""
    tags = run.tags
    if PARTITION_NAME_TAG in tags:
        return tags[PARTITION_NAME_TAG]
    if ASSET_PARTITION_RANGE_START_TAG in tags:
        return f"{tags[ASSET_PARTITION_RANGE_START_TAG]}…{tags.get(ASSET_PARTITION_RANGE_END_TAG, '')}"
    return "all"


def alert_key(run: DagsterRun) -> str:
    return f"{KIND}:{run.job_name}:{run_scope(run)}"


@run_failure_sensor(
    default_status=DefaultSensorStatus.RUNNING,
    description="Raises an alert in ops.alerts for each failed run, one per job and partition (a failed retry refreshes it).",
)
def run_failure_alerts(context: RunFailureSensorContext, postgres: PostgresResource):
    run = context.dagster_run
    # The step errors say what went wrong; the run's own failure message only names the steps.
    step_errors = [
        f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
        for event in context.get_step_failure_events()
        if event.step_failure_data and event.step_failure_data.error
    ]
    error = "; ".join(step_errors) or context.failure_event.message or "no message"
    condition = Condition(
        alert_key=alert_key(run),
        kind=KIND,
        subject=f"{run.job_name} ({run_scope(run)})",
        level=2,
        level_name="failed",
        message=f"{run.job_name} failed for {run_scope(run)} (run {run.run_id[:8]}): {error[:500]}",
        details={"run_id": run.run_id, "job": run.job_name, "scope": run_scope(run)},
    )
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        alert_id, outcome = raise_alert(cur, condition, get_settings().notification_channels)
    context.log.info(f"alert {alert_id} {outcome}: {condition.message}")


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Resolves the run-failure alert of a job and partition when a later run of them succeeds.",
)
def run_success_resolves_alerts(context: RunStatusSensorContext, postgres: PostgresResource):
    run = context.dagster_run
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        resolved = resolve_alert(cur, alert_key(run), f"run {run.run_id[:8]} of {run.job_name} succeeded")
    for alert_id in resolved:
        context.log.info(f"alert {alert_id} resolved: {run.job_name} succeeded for {run_scope(run)}")
