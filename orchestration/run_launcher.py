"""Dagster's DefaultRunLauncher, with the run-worker health check run monitoring needs,
and warm run workers for the runs a utility waits on.

A run worker that dies without recording its end (killed, out of memory, or unable to
write its failure because PostgreSQL was down at that moment: the code server's own
orphan check then dies with the connection) leaves its run STARTED for ever, holding a
run slot and its pool. Dagster's run monitoring fails such runs, and run retries launch
them again, but only with a launcher that can tell a dead worker from a busy one, and
DefaultRunLauncher (Dagster 1.13) cannot. The worker records its pid when it starts;
this launcher checks that process on this machine. Workers on another host (a remote
code server) are reported running: nothing here can see them.

DefaultRunLauncher asks the code server to start each run in a *spawned* interpreter,
which imports Dagster and the code location again before the run's first step: 4 s on
an idle 2-core machine, 10 s beside the automation. A DR plan is worth its latency, so
runs tagged with one of `warm_queues` (`wattline/queue`) are forked instead from a
forkserver that imported the code location once (Python's multiprocessing forkserver,
started with the first launch): the worker runs the same `core_execute_run` as
`dagster api execute_run`, records its pid the same way, and is cancelled the same way
(an interrupt). The forkserver holds the code as it was when it started: a code change
reaches warm runs when the daemon restarts (`wattline up` does), as it reaches the code
server. Where the daemon cannot import the code (a separate code-server image), leave
`warm_queues` empty.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import threading
from typing import Any

import psutil
from dagster import Array, Field
from dagster._core.events import DagsterEventType, EngineEventData
from dagster._core.launcher import (
    CheckRunHealthResult,
    DefaultRunLauncher,
    LaunchRunContext,
    WorkerStatus,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._serdes import ConfigurableClassData

# The engine event a run worker records before anything else (dagster/_grpc/impl.py).
STARTED_PROCESS = "Started process for run"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", socket.gethostname()}
QUEUE_TAG = "wattline/queue"
# Set on a run a warm worker executes: the host whose process table holds its worker.
WARM_WORKER_TAG = "wattline/warm_worker_host"
# What the forkserver imports once, so that each fork starts with the code location loaded.
PRELOAD = ["orchestration.warm_worker", __name__]


class WattlineRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose run workers run monitoring can check, and which forks the
    runs of `warm_queues` from a process that has the code location loaded."""

    def __init__(self, inst_data: ConfigurableClassData | None = None, warm_queues: list[str] | None = None):
        super().__init__(inst_data=inst_data)
        self._warm_queues = frozenset(warm_queues or ())
        self._forkserver: Any = None
        self._forkserver_lock = threading.Lock()

    @classmethod
    def config_type(cls):
        return {
            "warm_queues": Field(
                Array(str), is_required=False, default_value=[],
                description="Values of the wattline/queue tag whose runs are forked from a warm worker "
                            "(the daemon must be able to import the code location).",
            ),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: dict) -> WattlineRunLauncher:
        return cls(inst_data=inst_data, warm_queues=config_value.get("warm_queues"))

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        if run.tags.get(QUEUE_TAG) in self._warm_queues and run.job_code_origin is not None:
            self._launch_warm(run)
            return
        super().launch_run(context)

    def _launch_warm(self, run: DagsterRun) -> None:
        context = self._warm_context()
        self._instance.add_run_tags(run.run_id, {WARM_WORKER_TAG: socket.gethostname()})
        worker = context.Process(target=execute_warm_run, args=(self._instance.get_ref(), run.run_id), daemon=False)
        worker.start()
        # Joined in the background so the launcher's process keeps no finished worker's
        # handle (the forkserver reaps the process itself).
        threading.Thread(target=worker.join, name=f"warm-run-{run.run_id[:8]}", daemon=True).start()

    def _warm_context(self):
        with self._forkserver_lock:
            if self._forkserver is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(PRELOAD)
                self._forkserver = context
            return self._forkserver

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or WARM_WORKER_TAG not in run.tags:
            return super().terminate(run_id)
        if run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        worker = self._worker(run)
        if worker is None or not _alive(*worker):
            return False
        # The worker turns an interrupt into a cancelled run, as a code server's worker does.
        os.kill(worker[0], signal.SIGINT)
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if not _launched_here(run):
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker on another host: not checked")
        worker = self._worker(run)
        if worker is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run worker has not recorded its process yet")
        pid, recorded_at = worker
        if _alive(pid, recorded_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {pid} is gone")

    def _worker(self, run: DagsterRun) -> tuple[int, float] | None:
        records = self._instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=20, ascending=True
        ).records
        for record in records:
            entry = record.event_log_entry
            event = entry.dagster_event
            if event is None or not (event.message or "").startswith(STARTED_PROCESS):
                continue
            pid = event.engine_event_data.metadata.get("pid")
            if pid is not None:
                return int(pid.value), entry.timestamp
        return None


def execute_warm_run(instance_ref, run_id: str) -> None:
    """A warm worker's body: `dagster api execute_run`'s, in a process forked with the code loaded."""
    from dagster import DagsterInstance
    from dagster._grpc.impl import core_execute_run
    from dagster._utils.hosted_user_process import recon_job_from_origin
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts(), DagsterInstance.from_ref(instance_ref) as instance:
        # The instance's storage pools its connections (orchestration/dagster_storage.py):
        # a burst's plan run stores thousands of events.
        run = instance.get_run_by_id(run_id)
        if run is None:
            raise RuntimeError(f"run {run_id} not found in the instance the warm worker was given")
        recon_job = recon_job_from_origin(run.job_code_origin)
        pid = os.getpid()
        instance.report_engine_event(f"{STARTED_PROCESS} (pid: {pid}).", run, EngineEventData.in_process(pid))
        try:
            for _ in core_execute_run(recon_job, run, instance, inject_env_vars=False):
                pass
        except Exception:  # noqa: BLE001 - core_execute_run records every failure in the event log before raising
            pass
        finally:
            instance.report_engine_event(f"Process for run exited (pid: {pid}).", run)


def _launched_here(run: DagsterRun) -> bool:
    warm_host = run.tags.get(WARM_WORKER_TAG)
    if warm_host:
        return warm_host in LOCAL_HOSTS
    info = run.tags.get(GRPC_INFO_TAG)
    if not info:
        return False
    address = json.loads(info)
    return bool(address.get("socket")) or address.get("host") in LOCAL_HOSTS


def _alive(pid: int, recorded_at: float) -> bool:
    try:
        process = psutil.Process(pid)
        # A worker nobody reaped any more is a zombie; a pid reused by a later process
        # started after the worker recorded it.
        return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= recorded_at + 1
    except psutil.NoSuchProcess:
        return False
