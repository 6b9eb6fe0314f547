"""Dagster's DefaultRunLauncher, with the run-worker health check run monitoring needs.

A run worker that dies without recording its end (killed, out of memory, or unable to
write its failure because PostgreSQL was down at that moment: the code server's own
orphan check then dies with the connection) leaves its run STARTED for ever, holding a
run slot and its pool. Dagster's run monitoring fails such runs, and run retries launch
them again, but only with a launcher that can tell a dead worker from a busy one, and
DefaultRunLauncher (Dagster 1.13) cannot. The worker records its pid when it starts;
this launcher checks that process on this machine. Workers on another host (a remote
code server) are reported running: nothing here can see them.
"""

from __future__ import annotations

import json
import socket

import psutil
from dagster._core.events import DagsterEventType
from dagster._core.launcher import (
    CheckRunHealthResult,
    DefaultRunLauncher,
    WorkerStatus,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import GRPC_INFO_TAG

# The engine event a run worker records before anything else (dagster/_grpc/impl.py).
STARTED_PROCESS = "Started process for run"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", socket.gethostname()}


class WattlineRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose run workers run monitoring can check."""

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


def _launched_here(run: DagsterRun) -> bool:
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
