"""`wattline backfill` as an operator runs it: a range of hours loaded and modelled
through the asset graph with progress, runs recorded in the instance; a range it
cannot load is refused with the reason before anything runs."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import create_database, drop_database

pytestmark = pytest.mark.e2e


def wattline(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        env={**{k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}, **env},
        capture_output=True, text=True, timeout=600, check=False,
    )


def test_backfill_loads_and_models_the_range_with_progress(tmp_path, pg_server):
    warehouse = create_database(pg_server, "wattline_backfill")
    storage = create_database(pg_server, "dagster_backfill")
    env = {
        "WATTLINE_HOME": str(tmp_path / "home"),
        "WATTLINE_DATABASE_URL": warehouse.url,
        "WATTLINE_DAGSTER_DATABASE_URL": storage.url,
        "WATTLINE_SIM_FACILITIES": "2",
        "WATTLINE_SIM_INTERVAL_S": "900",
    }
    start = (datetime.now(UTC) - timedelta(days=2)).replace(hour=6, minute=0, second=0, microsecond=0)
    try:
        out = wattline("backfill", "--start", f"{start:%Y-%m-%dT%H:%M}", "--end", f"{start + timedelta(hours=3):%Y-%m-%dT%H:%M}", env=env)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        for line in ("[1/3] Loading telemetry", "[2/3] Loading weather", "[3/3] Building the dbt models", "incremental_marts_job"):
            assert line in out.stdout
        engine = sa.create_engine(warehouse.sqlalchemy_url)
        with engine.connect() as conn:
            hours = conn.execute(sa.text(
                "select facility_id, count(*) from marts.fct_load_hourly where hour_start >= :s and hour_start < :e group by 1"
            ), {"s": start, "e": start + timedelta(hours=3)}).all()
        engine.dispose()
        assert sorted(hours) == [("FAC-0001", 3), ("FAC-0002", 3)]
        engine = sa.create_engine(storage.sqlalchemy_url)
        with engine.connect() as conn:
            assert conn.scalar(sa.text("select count(*) from runs where status = 'SUCCESS'")) >= 5
        engine.dispose()

        refused = wattline("backfill", "--start", "2026-05-02", "--end", "2026-05-01", env=env)
        assert refused.returncode == 2 and "is not after" in refused.stderr
        future = wattline("backfill", "--start", "2026-05-01", "--end", f"{datetime.now(UTC) + timedelta(days=2):%Y-%m-%d}", env=env)
        assert future.returncode == 2 and "may end at the open hour" in future.stderr
    finally:
        drop_database(pg_server, warehouse)
        drop_database(pg_server, storage)
