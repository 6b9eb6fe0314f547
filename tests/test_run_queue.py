"""The run queue of the generated instance, as the daemon dequeues it: the platform's own
runs (the automation, schedules) never take every slot, so a DR plan, which a utility
waits on, is launched at the next dequeue even when the automation has more to run."""

import pytest
from dagster import DagsterRun, DagsterRunStatus
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.utils import make_new_run_id
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from orchestration.conditions import wattline_automation
from orchestration.definitions import defs
from sensors.dr_sensor import DR_RUN_TAGS
from tests.conftest import generated_instance


@pytest.fixture
def instance(pg_server, tmp_path):
    with generated_instance(pg_server, tmp_path, "dagster_queue") as instance:
        yield instance


def queue(instance, job_name: str, tags: dict) -> DagsterRun:
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("wattline"), "__repository__"), job_name)
    return instance.add_run(DagsterRun(job_name=job_name, run_id=make_new_run_id(), status=DagsterRunStatus.QUEUED,
                                       tags=tags, remote_job_origin=origin))


def dequeue(instance) -> list[str]:
    """What the daemon launches at its next dequeue; those runs are then in progress."""
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    launched = daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
    for run in launched:
        instance.delete_run(run.run_id)
        instance.add_run(run.with_status(DagsterRunStatus.STARTED))
    return [run.job_name for run in launched]


def test_dr_plans_find_both_their_run_slots_when_the_automation_fills_the_queue(instance):
    # More of the platform's own runs than there are slots, tagged as they are launched:
    # the automation sensor's runs and the schedules' jobs.
    background = ["telemetry_job", "prices_job", "weather_and_carbon_job", "load_forecast_job", "incremental_marts_job"]
    queue(instance, "__ASSET_JOB", dict(wattline_automation.run_tags))
    for name in background:
        queue(instance, name, dict(defs.resolve_job_def(name).tags))
    max_runs = instance.get_concurrency_config().run_queue_config.max_concurrent_runs
    started = dequeue(instance)
    assert 0 < len(started) < max_runs, "the platform's own runs took every slot"

    # A utility's burst: the DR sensor's two runs go ahead of the automation still queued,
    # side by side (with one slot, a burst's second half waited for the first).
    queue(instance, "dr_plan_job", DR_RUN_TAGS)
    queue(instance, "dr_plan_job", DR_RUN_TAGS)
    assert dequeue(instance) == ["dr_plan_job", "dr_plan_job"]



def test_a_burst_of_dr_plans_leaves_slots_to_the_loads(instance):
    for _ in range(4):
        queue(instance, "dr_plan_job", DR_RUN_TAGS)
    for name in ("telemetry_job", "incremental_marts_job"):
        queue(instance, name, dict(defs.resolve_job_def(name).tags))
    # The plans go first, two at a time; the loads queued behind them are launched too.
    assert sorted(dequeue(instance)) == ["dr_plan_job", "dr_plan_job", "incremental_marts_job", "telemetry_job"]
