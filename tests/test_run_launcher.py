"""The run launcher of the generated instance: DR runs forked from a warm worker run,
record their worker, can be cancelled, and a dead worker is seen as dead (issue 18,
defect 19: a spawned interpreter per plan run cost 10 s of a utility's wait)."""

import os
import signal
import uuid

import psutil
import pytest
from dagster import DagsterEventType, DagsterRunStatus, reconstructable
from dagster._core.launcher import WorkerStatus

from orchestration.run_launcher import WARM_WORKER_TAG, WattlineRunLauncher
from tests.conftest import generated_instance, wait_for
from tests.warm_jobs import held_job


@pytest.fixture(scope="module")
def instance(pg_server, tmp_path_factory):
    with generated_instance(pg_server, tmp_path_factory.mktemp("launcher"), "dagster_launcher") as instance:
        yield instance


def launch(instance, tmp_path, queue: str):
    # One release file per run: a second run of a test must not find the first one's.
    release = tmp_path / f"release-{queue}-{uuid.uuid4().hex[:8]}"
    run = instance.create_run_for_job(
        held_job, job_code_origin=reconstructable(held_job).get_python_origin(), tags={"wattline/queue": queue},
        run_config={"ops": {"hold_until_released": {"config": {"path": str(release)}}}},
    )
    instance.launch_run(run.run_id, workspace=None)
    return run, release


def status(instance, run_id: str) -> DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def started(instance, run_id: str) -> bool:
    """True once the run is STARTED; a run that ended first fails with its event log."""
    run = instance.get_run_by_id(run_id)
    if run.is_finished:
        log = "\n".join(
            f"{e.dagster_event_type}: {e.message}"
            + (f"\n{e.dagster_event.engine_event_data.error.to_string()}"
               if e.dagster_event_type == DagsterEventType.ENGINE_EVENT and e.dagster_event.engine_event_data.error else "")
            for e in instance.all_logs(run_id)
        )
        raise AssertionError(f"run {run_id} ended {run.status} before it started:\n{log}")
    return run.status == DagsterRunStatus.STARTED


def test_a_dr_run_runs_in_a_warm_worker_that_run_monitoring_checks_and_cancel_stops(instance, tmp_path):
    assert isinstance(instance.run_launcher, WattlineRunLauncher)
    assert instance.run_launcher._warm_queues == {"dr"}
    run, release = launch(instance, tmp_path, "dr")
    wait_for(lambda: started(instance, run.run_id), 180, "the run to start")
    run = instance.get_run_by_id(run.run_id)
    assert WARM_WORKER_TAG in run.tags
    worker = wait_for(lambda: instance.run_launcher._worker(run), 60, "the worker to record its pid")
    assert worker[0] != os.getpid()
    assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING

    # Cancelled from the UI: the worker is interrupted and records the run cancelled.
    assert instance.run_launcher.terminate(run.run_id)
    wait_for(lambda: status(instance, run.run_id) == DagsterRunStatus.CANCELED, 120, "the run to be cancelled")
    wait_for(lambda: instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.FAILED, 60,
             "the worker to exit")


def test_a_warm_run_succeeds_and_a_killed_warm_worker_is_reported_dead(instance, tmp_path):
    run, release = launch(instance, tmp_path, "dr")
    wait_for(lambda: started(instance, run.run_id), 180, "the run to start")
    pid, _ = wait_for(lambda: instance.run_launcher._worker(run), 60, "the worker to record its pid")
    release.touch()
    wait_for(lambda: status(instance, run.run_id) == DagsterRunStatus.SUCCESS, 120, "the run to succeed")
    # The worker ends with its run: no process is left behind.
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 60,
             "the worker to exit")

    run, release = launch(instance, tmp_path, "dr")
    wait_for(lambda: started(instance, run.run_id), 180, "the run to start")
    run = instance.get_run_by_id(run.run_id)
    pid, _ = wait_for(lambda: instance.run_launcher._worker(run), 60, "the worker to record its pid")
    os.kill(pid, signal.SIGKILL)
    health = wait_for(lambda: (h := instance.run_launcher.check_run_worker_health(run)).status == WorkerStatus.FAILED and h,
                      60, "the dead worker to be seen")
    assert str(pid) in health.msg
