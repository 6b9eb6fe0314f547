"""Faults the platform survives on its own (issue 18): a database host that never
answers, a port already taken, SIGTERM to a command in the middle of a run, and (in
test_served_faults.py) the embedded server killed while serving."""

import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import create_database, drop_database, wait_for
from tests.support import cli_env, free_port

pytestmark = pytest.mark.e2e


class SilentServer:
    """A loopback port that accepts connections and never says a word."""

    def __enter__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self):
        self.sock.settimeout(0.5)
        while not self.stop.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except TimeoutError:
                continue

    def __exit__(self, *exc):
        self.stop.set()
        for conn in self.held:
            conn.close()
        self.sock.close()


def test_a_database_host_that_never_answers_fails_db_url_promptly_naming_the_variable(tmp_path):
    with SilentServer() as silent:
        env = cli_env(tmp_path / "home", WATTLINE_DATABASE_URL=f"postgresql://wl@127.0.0.1:{silent.port}/wattline")
        started = time.monotonic()
        try:
            out = subprocess.run(
                [sys.executable, "-m", "orchestration.cli", "db", "url"],
                env=env, capture_output=True, text=True, timeout=90, check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail("`wattline db url` still waited for the silent host after 90 s")
        took = time.monotonic() - started
        assert silent.held, "the command never connected to the host"
    assert out.returncode != 0
    assert took < 60, f"took {took:.0f} s"
    errors = [line for line in out.stderr.splitlines() if line.strip() and "Warning" not in line and not line.startswith("  ")]
    assert len(errors) == 1, out.stderr
    assert "WATTLINE_DATABASE_URL" in errors[0] and "Traceback" not in out.stderr, out.stderr


@pytest.mark.parametrize("variable", ["WATTLINE_UI_PORT", "WATTLINE_WEBHOOK_PORT", "WATTLINE_SIM_PORT"])
def test_up_refuses_a_port_in_use_before_starting_anything(tmp_path, variable):
    home = tmp_path / "home"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        ports = {"WATTLINE_UI_PORT": str(free_port()), "WATTLINE_WEBHOOK_PORT": str(free_port()), "WATTLINE_SIM_PORT": str(free_port())}
        # The embedded default: before the fix the embedded server, the bootstrap and the
        # servers all started before anyone noticed the port.
        env = cli_env(home, **{**ports, variable: str(port)})
        started = time.monotonic()
        try:
            out = subprocess.run(
                [sys.executable, "-m", "orchestration.cli", "up"], env=env, capture_output=True, text=True, timeout=120, check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"`wattline up` with {variable} taken was still running after 120 s")
    assert out.returncode != 0
    assert time.monotonic() - started < 60
    errors = [line for line in out.stderr.splitlines() if line.strip() and "Warning" not in line and not line.startswith("  ")]
    assert len(errors) == 1 and f"{variable}={port}" in errors[0], out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    # Nothing started: no embedded server, no Dagster instance, so no run either.
    assert not (home / "pgdata").exists() and not (home / "dagster").exists()


def runs(engine: sa.Engine) -> dict[str, tuple[str, str]]:
    """run id -> (job, status), from the Dagster run storage."""
    with engine.connect() as conn:
        return {
            run_id: (job, status)
            for run_id, job, status in conn.execute(sa.text("select run_id, pipeline_name, status from runs"))
        }


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM])
def test_sigterm_ends_a_backfill_promptly_and_closes_its_run(pg_server, dbt_manifest, tmp_path, stop_signal):
    warehouse = create_database(pg_server, "sigterm")
    storage = create_database(pg_server, "sigterm_dagster")
    env = cli_env(
        tmp_path / "home",
        WATTLINE_DATABASE_URL=warehouse.url,
        WATTLINE_DAGSTER_DATABASE_URL=storage.url,
        WATTLINE_SIM_FACILITIES="2",
    )
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    output = tmp_path / "backfill.out"
    engine = sa.create_engine(storage.sqlalchemy_url)
    with output.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestration.cli", "backfill", "--start", f"{end - timedelta(hours=2):%Y-%m-%dT%H:%M}", "--end", f"{end:%Y-%m-%dT%H:%M}"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        def dbt_run_started():
            if process.poll() is not None:
                pytest.fail(f"the backfill ended before its dbt runs:\n{output.read_text()[-3000:]}")
            try:
                return [run_id for run_id, (job, status) in runs(engine).items()
                        if status == "STARTED" and job in ("unpartitioned_models_job", "incremental_marts_job")]
            except sa.exc.ProgrammingError:  # the run storage is not there yet
                return None

        # A dbt build in flight: where SIGTERM hung the command and left its run STARTED.
        in_flight = wait_for(dbt_run_started, 400, "a dbt run of the backfill STARTED", interval_s=0.5)
        time.sleep(0.5)
        process.send_signal(stop_signal)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 60 s after {stop_signal.name}:\n{output.read_text()[-3000:]}")
        after = runs(engine)
        assert after[in_flight[0]][1] in ("CANCELED", "FAILURE"), after
        # Nothing this command started is left open either.
        assert not [r for r, (_, status) in after.items() if status in ("STARTED", "STARTING", "NOT_STARTED", "CANCELING")], after
        # The command ends saying so in one line, not with its traceback.
        last = [line for line in output.read_text().splitlines() if line.strip()][-1]
        assert last.startswith("interrupted"), output.read_text()[-3000:]
        assert code in (130, 128 + stop_signal), code
    finally:
        if process.poll() is None:
            process.kill()
        engine.dispose()
        drop_database(pg_server, warehouse)
        drop_database(pg_server, storage)
