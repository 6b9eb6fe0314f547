"""What the benchmarks share: a throwaway database, the simulator as a separate process,
and filling a database the real way (the code location's jobs, as `wattline demo` runs
them).

The database lives on WATTLINE_DATABASE_URL's server, else on the embedded server under
WATTLINE_HOME; it is dropped afterwards, and an embedded server the benchmark started is
stopped again (it would otherwise outlive the benchmark).
"""

import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import sqlalchemy as sa

from orchestration import embedded_postgres
from orchestration.database import Database
from orchestration.runtime import ensure_warehouse
from orchestration.settings import get_settings
from resources.postgres import ensure_warehouse_schema

REPO = Path(__file__).resolve().parents[1]


def fleet_arguments(parser, facilities: int, days: int) -> None:
    """The simulated fleet a filling benchmark loads."""
    parser.add_argument("--facilities", type=int, default=facilities)
    parser.add_argument("--days", type=int, default=days)
    parser.add_argument("--interval-s", type=int, default=900, help="simulated meters' reading interval")


def isolate() -> None:
    """A throwaway WATTLINE_HOME unless one is set, and a dbt target of the benchmarks'
    own: the manifest parsed for the benchmark's database stays apart from the platform's."""
    os.environ.setdefault("WATTLINE_HOME", tempfile.mkdtemp(prefix="wattline-bench-"))
    os.environ["WATTLINE_DBT_TARGET_PATH"] = "target/bench"


@contextlib.contextmanager
def fresh_database():
    settings = get_settings()
    started_here = not settings.database_url and embedded_postgres.running_url(settings.home) is None
    server = ensure_warehouse(settings)
    database = server.with_name(f"wattline_bench_{secrets.token_hex(4)}")
    # Pre-ping: a soak restarts the server, and the drop must not meet a dead connection.
    admin = sa.create_engine(server.sqlalchemy_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{database.name}"'))
    try:
        ensure_warehouse_schema(database)
        yield Database(url=database.url, embedded=server.embedded)
    finally:
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'drop database if exists "{database.name}" with (force)'))
        finally:
            # Even when the drop fails, the server this benchmark started must not outlive it.
            admin.dispose()
            if started_here:
                embedded_postgres.stop(settings.home)


@contextlib.contextmanager
def simulator(facilities: int, interval_s: int, seed: int = 42, bad_row_rate: float = 0.0):
    """The simulator on a free loopback port, in its own process; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", str(port), "--facilities", str(facilities), "--interval-s", str(interval_s),
         "--seed", str(seed), "--bad-row-rate", str(bad_row_rate)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str) -> None:
    for _ in range(300):
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the simulator at {url} did not start")


def fill(database: Database, simulator_url: str, days: int, label: str, bi_password: str | None = None) -> dict:
    """Bootstrap, then load and model the last `days` closed days the way `wattline demo`
    does; seconds per phase, the readings loaded and the window [start, end).

    The BI role is bootstrapped before dbt runs (with `bi_password` as its password),
    so the marts are tables dbt created after the grants (the default privileges at work).
    """
    from orchestration.backfill import backfill_window, day_ranges, run_output, utc_days
    from orchestration.settings import SOURCE_URLS

    os.environ["WATTLINE_DATABASE_URL"] = database.url
    if bi_password is not None:
        os.environ["WATTLINE_BI_PASSWORD"] = bi_password
    for name in SOURCE_URLS:
        os.environ[f"WATTLINE_{name.upper()}"] = simulator_url
    os.environ.update(database.dbt_env())
    get_settings.cache_clear()

    from dagster import DagsterInstance

    from orchestration.runs import run_job
    from resources.dbt import prepare_manifest

    seconds = {}
    started = time.perf_counter()
    ensure_warehouse(get_settings())
    prepare_manifest()
    seconds["bootstrap"] = time.perf_counter() - started

    # Closed hours only: the open hour would leave the last day's figures partial.
    _, end = backfill_window(days, datetime.now(UTC))
    end -= timedelta(hours=1)
    start = end - timedelta(days=days)
    instance = DagsterInstance.ephemeral()
    log_path = Path(os.environ["WATTLINE_HOME"]) / "logs" / f"bench-{label}-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    print(f"filling {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC; run output: {log_path}", flush=True)

    def phase(name: str, runs) -> None:
        began = time.perf_counter()
        with run_output(log_path):
            for job, bounds in runs:
                result = run_job(job, instance, **bounds)
                if not result.success:
                    raise SystemExit(f"{job} {bounds} failed; see {log_path}")
        seconds[name] = time.perf_counter() - began
        print(f"  {name}: {seconds[name]:.0f} s", flush=True)

    phase("registry", [("registry_job", {})])
    phase("telemetry", [("telemetry_job", {"start": lower, "end": upper}) for lower, upper in day_ranges(start, end)])
    phase("weather+grid", [("grid_and_weather_job", {"partition_key": f"{day:%Y-%m-%d}"}) for day in utc_days(start, end)])
    phase("dbt", [("unpartitioned_models_job", {}), ("incremental_marts_job", {"start": start, "end": end})])
    seconds["total"] = time.perf_counter() - started
    # What a new telemetry hour costs at this size: its window of the incremental marts,
    # and the marts rebuilt whole from them (anomalies, budgets, scores).
    phase("one hour of marts", [("incremental_marts_job", {"start": end - timedelta(hours=1), "end": end})])

    engine = sa.create_engine(database.sqlalchemy_url)
    with engine.connect() as conn:
        readings = conn.scalar(sa.text("select count(*) from raw.meter_readings"))
        missing = [
            table for table in (
                "fct_load_15min", "fct_load_hourly", "fct_load_daily", "fct_carbon_budget_status", "fct_emissions_hourly", "fct_energy_cost_hourly",
            )
            if conn.scalar(sa.text("select to_regclass(:t)"), {"t": f"marts.{table}"}) is None
        ]
    engine.dispose()
    if missing:
        raise SystemExit(f"the jobs built no marts.{', marts.'.join(missing)}")
    return {"readings": readings, "seconds": seconds, "start": start, "end": end}


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]
