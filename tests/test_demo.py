"""`wattline demo` end to end, as a user runs it, against the embedded server and against
a server given by WATTLINE_DATABASE_URL."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
import sqlalchemy as sa

from orchestration import embedded_postgres

pytestmark = pytest.mark.e2e


def run_demo(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "demo", "--facilities", "2", "--days", "1", "--no-serve"],
        env={**{k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}, "WATTLINE_SIM_PORT": "0", **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_marts_cover_the_last_day(database, facilities: int) -> None:
    """Every facility has every quarter hour of the last day, up to a few minutes ago."""
    engine = sa.create_engine(database.sqlalchemy_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select facility_id, count(*) as intervals, min(interval_start) as first, max(interval_start) as last, "
            "now() - max(interval_start) as age, min(data_completeness) filter (where interval_end < now() - interval '2 minutes') as completeness "
            "from marts.fct_load_15min group by facility_id"
        )).all()
    engine.dispose()
    assert len(rows) == facilities
    for row in rows:
        # Contiguous: one row per quarter hour between the first and the last.
        assert row.intervals == (row.last - row.first) / timedelta(minutes=15) + 1, row
        assert row.intervals >= 23 * 4, row
        assert row.age < timedelta(minutes=20), row
        assert row.completeness == 1.0, row


def assert_feeds_cover_the_window(database) -> None:
    """Weather at every facility with 48 h of forecast ahead; prices and carbon for every zone."""
    engine = sa.create_engine(database.sqlalchemy_url)
    with engine.connect() as conn:
        weather = conn.execute(sa.text(
            "select f.facility_id, count(w.time) filter (where not w.is_forecast) as observed, "
            "max(w.time) filter (where w.is_forecast) - now() as ahead "
            "from raw.facilities f left join raw.weather_hourly w using (facility_id) group by 1"
        )).all()
        zones_without_prices = conn.scalar(sa.text(
            "select count(*) from (select distinct price_zone from raw.facilities) z "
            "where not exists (select from raw.grid_prices p where p.zone = z.price_zone and p.resolution = '5min')"
        ))
        zones_without_carbon = conn.scalar(sa.text(
            "select count(*) from (select distinct grid_zone from raw.facilities) z "
            "where not exists (select from raw.grid_carbon_intensity c where c.zone = z.grid_zone)"
        ))
    engine.dispose()
    for row in weather:
        assert row.observed >= 24 and row.ahead > timedelta(hours=46), row
    assert zones_without_prices == 0 and zones_without_carbon == 0


def test_demo_on_the_embedded_server(tmp_path):
    home = tmp_path / "home"
    try:
        out = run_demo({"WATTLINE_HOME": str(home)})
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert "Readings loaded:" in out.stdout
        url = embedded_postgres.running_url(home)
        assert url is not None
        from orchestration.database import Database

        assert_marts_cover_the_last_day(Database(url=url).with_name("wattline"), facilities=2)
        assert_feeds_cover_the_window(Database(url=url).with_name("wattline"))
        for step in ("[1/9]", "[9/9]"):
            assert step in out.stdout
        # A day of history is too little to forecast: the demo says so for each facility.
        assert "0 forecast, 2 skipped (too little history), 0 failed" in out.stdout
        assert out.stdout.count("the model needs 14") == 2
        # The signed DR call went through the receiver and the sensor to a plan run.
        engine = sa.create_engine(Database(url=url).with_name("wattline").sqlalchemy_url)
        with engine.connect() as conn:
            event_id, status, reason = conn.execute(sa.text("select event_id, status, status_reason from ops.dr_events")).one()
            baselines = conn.scalar(sa.text("select count(*) from marts.fct_dr_baseline"))
            planned = conn.scalar(sa.text("select count(*) from marts.fct_dr_reduction_plan"))
        engine.dispose()
        assert status == "planned" and f"DR event {event_id} (" in out.stdout
        if baselines == 0:
            # Yesterday was another day type (a weekend before a Monday): no CBL day, no
            # forecast from one day of history, nothing to plan from; and it says so.
            assert reason.startswith("no baseline for FAC-0001, FAC-0002"), reason
        else:
            assert planned >= baselines
    finally:
        embedded_postgres.stop(home)
