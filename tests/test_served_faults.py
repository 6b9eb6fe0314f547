"""`wattline up` on the embedded server, as a newcomer runs it: the terminal says what an
operator needs and the rest goes to WATTLINE_HOME/logs; the embedded PostgreSQL killed
mid-run comes back by itself, and the run its death cut off is failed and retried."""

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from orchestration import embedded_postgres
from orchestration.database import Database
from tests.conftest import wait_for
from tests.support import cli_env, free_port

pytestmark = pytest.mark.e2e



@dataclass
class Served:
    process: subprocess.Popen
    home: Path
    terminal: Path
    url: str

    def output(self) -> str:
        return self.terminal.read_text(errors="replace")

    def runs(self) -> dict[str, dict] | None:
        """run id -> job, status, parent run (of a retry); None while the database is down."""
        url = embedded_postgres.running_url(self.home)
        if url is None:
            return None
        engine = sa.create_engine(Database(url=url).with_name("dagster").sqlalchemy_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text(
                    "select r.run_id, r.pipeline_name, r.status, t.value from runs r "
                    "left join run_tags t on t.run_id = r.run_id and t.key = 'dagster/parent_run_id'"
                )).all()
        except sa.exc.SQLAlchemyError:
            return None
        finally:
            engine.dispose()
        return {run_id: {"job": job, "status": status, "parent": parent} for run_id, job, status, parent in rows}

    def worker_pid(self, run_id: str) -> int | None:
        """The pid the run's worker recorded when it started."""
        url = embedded_postgres.running_url(self.home)
        engine = sa.create_engine(Database(url=url).with_name("dagster").sqlalchemy_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                events = conn.execute(sa.text(
                    "select event from event_logs where run_id = :r and dagster_event_type = 'ENGINE_EVENT'"
                ), {"r": run_id}).scalars().all()
        finally:
            engine.dispose()
        for event in events:
            found = re.search(r"Started process for run \(pid: (\d+)\)", event)
            if found:
                return int(found.group(1))
        return None


@pytest.fixture(scope="module")
def served(tmp_path_factory, dbt_manifest):
    root = tmp_path_factory.mktemp("served")
    home = root / "home"
    port = free_port()
    env = cli_env(home, WATTLINE_UI_PORT=str(port), WATTLINE_WEBHOOK_PORT=str(free_port()), WATTLINE_SIM_FACILITIES="2")
    terminal = root / "terminal.out"
    with terminal.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "up"], env=env, stdout=out, stderr=subprocess.STDOUT)
    platform = Served(process, home, terminal, f"http://127.0.0.1:{port}")
    try:
        def answering():
            assert process.poll() is None, platform.output()[-3000:]
            try:
                return requests.get(f"{platform.url}/server_info", timeout=5).ok
            except requests.RequestException:
                return False

        wait_for(answering, 240, "the Dagster UI answering")
        yield platform
    finally:
        family = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        for child in family:
            if child.is_running():
                child.kill()
        embedded_postgres.stop(home)


def test_the_terminal_shows_what_an_operator_needs_and_the_logs_hold_the_rest(served):
    # Serve until the automation has launched runs: the daemon has had plenty to say.
    wait_for(lambda: len(served.runs() or {}) >= 2, 420, "runs launched by the automation")
    assert served.process.poll() is None, served.output()[-3000:]
    text = served.output()
    lines = [line for line in text.splitlines() if line.strip()]
    assert "\x1b[" not in text
    assert len(lines) <= 15, text[-4000:]
    assert any("Dagster UI: http://127.0.0.1:" in line for line in lines), text
    logs = served.home / "logs"
    assert f"logs: {logs}" in text
    daemon = (logs / "daemon.log").read_text(errors="replace")
    assert "dagster.daemon" in daemon and "SensorDaemon" in daemon, daemon[-2000:]
    assert (logs / "webserver.log").stat().st_size > 0
    assert (logs / "receiver.log").exists()


UNFINISHED = ("STARTED", "STARTING", "CANCELING")


def test_the_embedded_server_killed_mid_run_comes_back_and_the_run_is_failed_and_retried(served):
    def started():
        assert served.process.poll() is None, served.output()[-3000:]
        return {run_id for run_id, r in (served.runs() or {}).items() if r["status"] == "STARTED"}

    def worker_of_a_started_run():
        for run_id in started():
            pid = served.worker_pid(run_id)
            if pid is not None and psutil.pid_exists(pid):
                return run_id, pid
        return None

    victim, worker = wait_for(worker_of_a_started_run, 420, "a run STARTED", interval_s=0.5)
    before = served.runs()
    in_flight = {run_id for run_id, r in before.items() if r["status"] == "STARTED"}
    postmaster = int((embedded_postgres.pgdata_dir(served.home) / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, signal.SIGKILL)
    # A worker that dies with the database (the outage outlasted its retries, or it was
    # killed too): nothing will ever record its run's end but run monitoring.
    os.kill(worker, signal.SIGKILL)

    def restarted():
        assert served.process.poll() is None, served.output()[-3000:]
        url = embedded_postgres.running_url(served.home)
        pid_file = embedded_postgres.pgdata_dir(served.home) / "postmaster.pid"
        return url is not None and pid_file.exists() and int(pid_file.read_text().split()[0]) != postmaster

    wait_for(restarted, 120, "the embedded server back, restarted by `wattline up`")
    assert "restarting" in served.output(), served.output()[-3000:]

    def ended():
        runs = served.runs() or {}
        statuses = {run_id: runs[run_id]["status"] for run_id in in_flight if run_id in runs}
        return len(statuses) == len(in_flight) and not set(statuses.values()) & set(UNFINISHED) and statuses

    # Run monitoring polls every 10 s; before, such runs stayed STARTED for 12+ minutes.
    statuses = wait_for(ended, 240, f"the runs in flight {sorted(in_flight)} ended")
    assert statuses[victim] == "FAILURE", statuses
    failed = {run_id for run_id, status in statuses.items() if status == "FAILURE"}

    def retried_and_a_new_run_succeeded():
        assert served.process.poll() is None, served.output()[-3000:]
        runs = served.runs() or {}
        retried = {r["parent"] for r in runs.values() if r["parent"]}
        succeeded = [run_id for run_id, r in runs.items() if run_id not in before and r["status"] == "SUCCESS"]
        return failed <= retried and succeeded

    # Retried (run_retries), and the slots and pools they held are free: new runs succeed.
    wait_for(retried_and_a_new_run_succeeded, 600, f"retries of {sorted(failed)} and a new run succeeding", interval_s=2)
    lines = [line for line in served.output().splitlines() if line.strip()]
    assert len(lines) <= 40, served.output()[-4000:]
