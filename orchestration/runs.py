"""Running jobs in-process over a range of hourly partitions, as one run per range."""

from __future__ import annotations

from datetime import datetime, timedelta

from dagster import DagsterInstance, ExecuteInProcessResult
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from dagster._core.utils import make_new_run_id

HOURLY_KEY_FORMAT = "%Y-%m-%d-%H:%M"

# Every run the platform starts by itself (the automation, schedules, backfills): the
# instance caps them below its run limit (dagster.yaml tag_concurrency_limits), so a DR
# plan, which a utility waits on, always finds a slot.
BACKGROUND_RUN_TAGS = {"wattline/queue": "background"}

# The run's events still reach the instance (and the UI); the terminal shows only problems.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

# The runs this process is executing, so that an interrupted command closes them
# (orchestration/interrupts.py) instead of leaving them STARTED with no worker.
_IN_FLIGHT: dict[str, DagsterInstance] = {}


def hourly_range_tags(start: datetime, end: datetime) -> dict[str, str]:
    """Tags that make one run cover the hourly partitions in [start, end)."""
    if end <= start:
        raise ValueError(f"empty partition range: {start} – {end}")
    return {
        ASSET_PARTITION_RANGE_START_TAG: start.strftime(HOURLY_KEY_FORMAT),
        ASSET_PARTITION_RANGE_END_TAG: (end - timedelta(hours=1)).strftime(HOURLY_KEY_FORMAT),
    }


def run_job(
    job_name: str,
    instance: DagsterInstance,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    partition_key: str | None = None,
    tags: dict[str, str] | None = None,
) -> ExecuteInProcessResult:
    """Execute a job of the code location in this process, recorded in `instance`: over
    the hourly partitions in [start, end) as one run, or for one `partition_key`."""
    from orchestration.definitions import defs

    run_tags = dict(tags or {})
    if start is not None and end is not None:
        run_tags.update(hourly_range_tags(start, end))
    job = defs.resolve_job_def(job_name)
    run_id = make_new_run_id()
    _IN_FLIGHT[run_id] = instance
    try:
        return job.execute_in_process(
            instance=instance, tags=run_tags, run_config=QUIET_RUN_CONFIG, partition_key=partition_key, run_id=run_id,
        )
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM) or broken before Dagster recorded the run's end,
        # e.g. while the run was still being set up: nobody will execute it any more.
        _close(instance, run_id, "`wattline` was interrupted before the run ended", canceling=False)
        raise
    finally:
        _IN_FLIGHT.pop(run_id, None)


def runs_in_flight() -> list[tuple[DagsterInstance, str]]:
    return [(instance, run_id) for run_id, instance in list(_IN_FLIGHT.items())]


def close_runs_in_flight(message: str, *, canceling: bool) -> list[str]:
    """Mark the runs this process has not finished: CANCELING (its execution then ends
    them as CANCELED when it unwinds) or, when it cannot unwind, CANCELED. Returns the
    run ids marked."""
    return [run_id for instance, run_id in runs_in_flight() if _close(instance, run_id, message, canceling=canceling)]


def _close(instance: DagsterInstance, run_id: str, message: str, *, canceling: bool) -> bool:
    run = instance.get_run_by_id(run_id)
    if run is None or run.is_finished:
        return False
    if canceling:
        instance.report_run_canceling(run, message)
    else:
        instance.report_run_canceled(run, message)
    return True
