"""The telemetry asset against the simulator and real PostgreSQL: what lands in
raw.meter_readings is what the source served, and reruns replace instead of duplicating."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
from dagster import DagsterInstance, materialize
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

from assets.telemetry import hours, meter_readings
from orchestration.runs import hourly_range_tags
from resources.postgres import PostgresResource
from resources.telemetry_api import TelemetryApiResource
from simulator.config import SimulatorConfig
from simulator.server import BackgroundServer, SimulatorServer
from tests.conftest import failure_text, load_registry, source_resources

NOW = datetime(2026, 1, 6, 12, tzinfo=UTC)
HOUR = datetime(2026, 1, 5, 10, tzinfo=UTC)
FACILITIES = 3


@pytest.fixture(scope="module")
def simulator():
    config = SimulatorConfig(seed=11, facilities=FACILITIES, interval_s=60, now=lambda: NOW)
    with SimulatorServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def registry(warehouse, simulator):
    load_registry(warehouse, simulator.url)


@pytest.fixture
def resources(warehouse, simulator, registry):
    return source_resources(warehouse, simulator.url, max_retries=0)


def source_rows(simulator, start, end) -> dict[tuple[str, str], float]:
    """(meter, ts) → energy, straight from the simulator's API."""
    text = requests.get(
        f"{simulator.url}/v1/readings",
        params={"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"), "format": "csv"},
        timeout=30,
    ).text
    return {
        (row["meter_id"], row["ts"]): float(row["energy_kwh"])
        for row in csv.DictReader(io.StringIO(text))
    }


def loaded_rows(engine, start, end) -> dict[tuple[str, str], float]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select meter_id, to_char(ts at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), energy_kwh "
                "from raw.meter_readings where ts >= :s and ts < :e"
            ),
            {"s": start, "e": end},
        ).all()
    return {(meter, ts): kwh for meter, ts, kwh in rows}


def duplicates(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(
            sa.text("select count(*) - count(distinct (meter_id, ts)) from raw.meter_readings")
        )


def test_a_partition_holds_exactly_what_the_source_served(engine, simulator, resources):
    meters = requests.get(f"{simulator.url}/v1/meters", timeout=10).json()
    result = materialize([meter_readings], resources=resources, partition_key="2026-01-05-10:00")
    assert result.success

    expected = source_rows(simulator, HOUR, HOUR + timedelta(hours=1))
    assert len(expected) == len(meters) * 60  # every meter, every minute
    loaded = loaded_rows(engine, HOUR, HOUR + timedelta(hours=1))
    assert loaded.keys() == expected.keys()
    assert all(loaded[key] == pytest.approx(value) for key, value in expected.items())

    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["dagster/row_count"].value == len(expected)
    assert metadata["rows_loaded_in_run"].value == len(expected)
    assert metadata["rows_rejected"].value == 0


def test_rerun_and_overlapping_backfill_replace_and_never_duplicate(engine, simulator, resources):
    start, end = HOUR - timedelta(hours=1), HOUR + timedelta(hours=2)
    assert materialize([meter_readings], resources=resources, partition_key="2026-01-05-10:00").success
    first = loaded_rows(engine, HOUR, HOUR + timedelta(hours=1))

    assert materialize([meter_readings], resources=resources, partition_key="2026-01-05-10:00").success
    assert materialize([meter_readings], resources=resources, tags=hourly_range_tags(start, end)).success
    assert materialize([meter_readings], resources=resources, partition_key="2026-01-05-10:00").success

    assert loaded_rows(engine, HOUR, HOUR + timedelta(hours=1)) == first
    assert loaded_rows(engine, start, end) == pytest.approx(source_rows(simulator, start, end))
    assert duplicates(engine) == 0


def test_a_backfill_across_midnight_loads_both_days(engine, simulator, resources):
    start, end = datetime(2026, 1, 4, 22, tzinfo=UTC), datetime(2026, 1, 5, 2, tzinfo=UTC)
    assert hours(start, end) == [start + timedelta(hours=i) for i in range(4)]
    result = materialize([meter_readings], resources=resources, tags=hourly_range_tags(start, end))
    assert result.success
    expected = source_rows(simulator, start, end)
    assert loaded_rows(engine, start, end).keys() == expected.keys()
    # One run, four hourly partitions: each says what the run loaded, none claims it alone.
    events = result.get_asset_materialization_events()
    assert sorted(e.partition for e in events) == ["2026-01-04-22:00", "2026-01-04-23:00", "2026-01-05-00:00", "2026-01-05-01:00"]
    for event in events:
        assert event.materialization.metadata["rows_loaded_in_run"].value == len(expected)
        assert "dagster/row_count" not in event.materialization.metadata
    with engine.connect() as conn:
        days = set(conn.scalars(sa.text(
            "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
            "where i.inhparent = 'raw.meter_readings'::regclass"
        )))
        hours_of_jan_5 = set(conn.scalars(sa.text(
            "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
            "where i.inhparent = 'raw.meter_readings_20260105'::regclass"
        )))
    # Days partition the table; hours partition each day.
    assert {"meter_readings_20260104", "meter_readings_20260105"} <= days
    assert {"meter_readings_20260105_00", "meter_readings_20260105_01"} <= hours_of_jan_5


def test_a_source_error_fails_the_run_and_writes_nothing(engine, simulator, warehouse, registry):
    key = "2026-01-05-10:00"
    good = source_resources(warehouse, simulator.url)
    assert materialize([meter_readings], resources=good, partition_key=key).success
    before = loaded_rows(engine, HOUR, HOUR + timedelta(hours=1))

    broken = source_resources(warehouse, f"{simulator.url}/no-such-api", max_retries=0)
    result = materialize([meter_readings], resources=broken, partition_key=key, raise_on_error=False)
    assert not result.success
    failure = failure_text(result)
    assert "no-such-api/v1/readings" in failure and "answered 404" in failure
    assert loaded_rows(engine, HOUR, HOUR + timedelta(hours=1)) == before


def cut_server(upstream: str) -> BackgroundServer:
    """Serves the header and the first half of a real response, then drops the connection."""

    async def readings(request):
        body = requests.get(f"{upstream}/v1/readings", params=dict(request.query_params), timeout=30).content

        async def stream():
            yield body[: len(body) // 2]
            raise ConnectionResetError("simulated network cut")

        return StreamingResponse(stream(), media_type="text/csv")

    return BackgroundServer(Starlette(routes=[Route("/v1/readings", readings)]))


def test_a_body_cut_mid_stream_rolls_the_window_back(engine, simulator, warehouse, registry):
    key = "2026-01-05-10:00"
    good = source_resources(warehouse, simulator.url)
    assert materialize([meter_readings], resources=good, partition_key=key).success
    before = loaded_rows(engine, HOUR, HOUR + timedelta(hours=1))

    with cut_server(simulator.url) as cut:
        broken = source_resources(warehouse, cut.url, max_retries=0)
        result = materialize([meter_readings], resources=broken, partition_key=key, raise_on_error=False)
    assert not result.success
    assert loaded_rows(engine, HOUR, HOUR + timedelta(hours=1)) == before
    assert duplicates(engine) == 0


def test_no_source_configured_is_a_clear_error(warehouse, registry, monkeypatch):
    from orchestration.settings import get_settings

    monkeypatch.delenv("WATTLINE_TELEMETRY_API_URL", raising=False)
    get_settings.cache_clear()
    result = materialize(
        [meter_readings],
        resources={"postgres": PostgresResource(url=warehouse.url), "telemetry_api": TelemetryApiResource()},
        partition_key="2026-01-05-10:00",
        raise_on_error=False,
        instance=DagsterInstance.ephemeral(),
    )
    assert not result.success
    assert "WATTLINE_TELEMETRY_API_URL" in failure_text(result)
