"""Every rule quarantines exactly the rows that break it, and the good rows still load."""

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import requests
import sqlalchemy as sa
from dagster import materialize
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from assets.telemetry import meter_readings
from resources.telemetry_api import TelemetryApiResource
from simulator.config import SimulatorConfig
from simulator.server import BackgroundServer, SimulatorServer
from tests.conftest import load_registry, source_resources

# A recent hour on the real clock: "future" rows (the head-end's clock running a month
# ahead) are only in the future, for the database's now(), near the present.
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
KEY = HOUR.strftime("%Y-%m-%d-%H:%M")


@pytest.fixture(scope="module")
def dirty_simulator():
    config = SimulatorConfig(seed=21, facilities=6, interval_s=60, bad_row_rate=0.04)
    with SimulatorServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def resources(warehouse, dirty_simulator):
    load_registry(warehouse, dirty_simulator.url)
    return source_resources(warehouse, dirty_simulator.url)


def expected_rules(frame: pd.DataFrame, known_meters: set[str], start: datetime, end: datetime) -> pd.Series:
    """The rule each delivered row breaks, decided in pandas, independently of the SQL."""
    ts = pd.to_datetime(frame.ts, utc=True)
    rule = pd.Series(None, index=frame.index, dtype=object)

    def mark(mask, name):
        rule[mask & rule.isna()] = name

    mark(~np.isfinite(frame.energy_kwh) | ~np.isfinite(frame.power_factor) | ~np.isfinite(frame.voltage_v), "not_a_number")
    mark(frame.energy_kwh < 0, "negative_energy")
    mark((frame.power_factor < 0) | (frame.power_factor > 1), "power_factor_out_of_range")
    mark((frame.voltage_v < 80) | (frame.voltage_v > 600), "voltage_out_of_band")
    mark(ts > pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=5), "future_timestamp")
    mark((ts < start) | (ts >= end), "outside_window")
    mark(~frame.meter_id.isin(known_meters), "unknown_meter")
    good = rule.isna()
    repeated = frame[good].duplicated(subset=["meter_id", "ts"], keep="first")
    rule[repeated[repeated].index] = "duplicate_key"
    return rule


def test_each_rule_quarantines_exactly_its_rows(engine, dirty_simulator, resources):
    end = HOUR + timedelta(hours=1)
    body = requests.get(f"{dirty_simulator.url}/v1/readings", params={"start": HOUR.isoformat(), "end": end.isoformat()}, timeout=30).text
    frame = pd.read_csv(io.StringIO(body))
    known = {m["meter_id"] for m in requests.get(f"{dirty_simulator.url}/v1/meters", timeout=10).json()}
    expected = expected_rules(frame, known, HOUR, end)
    expected_counts = expected.value_counts().to_dict()
    assert set(expected_counts) == {
        "not_a_number", "negative_energy", "power_factor_out_of_range", "voltage_out_of_band",
        "future_timestamp", "duplicate_key", "unknown_meter",
    }, "the simulator should produce every kind of bad row in this hour"

    result = materialize([meter_readings], resources=resources, partition_key=KEY)
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert {k.removeprefix("rejected/"): v.value for k, v in metadata.items() if k.startswith("rejected/")} == expected_counts
    assert metadata["rows_loaded_in_run"].value == expected.isna().sum()
    assert metadata["rows_received"].value == len(frame)

    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text(
            "select reason, count(*) from raw.meter_readings_rejected where window_start = :s group by reason"
        ), {"s": HOUR}).all())
        loaded = conn.execute(sa.text(
            "select count(*), count(*) filter (where energy_kwh < 0 or energy_kwh = 'NaN' or power_factor > 1 or voltage_v = 0) "
            "from raw.meter_readings where ts >= :s and ts < :e"
        ), {"s": HOUR, "e": end}).one()
        sample = conn.execute(sa.text(
            "select meter_id, energy_kwh from raw.meter_readings_rejected where reason = 'negative_energy' limit 1"
        )).one()
    assert stored == expected_counts
    assert loaded == (expected.isna().sum(), 0)
    assert sample.meter_id in known and float(sample.energy_kwh) < 0  # the values as delivered


def test_reruns_keep_counts_and_checksums_identical(engine, resources):
    outcomes = []
    for _ in range(3):
        assert materialize([meter_readings], resources=resources, partition_key=KEY).success
        with engine.connect() as conn:
            outcomes.append(conn.execute(sa.text(
                "select (select count(*) from raw.meter_readings where ts >= :s and ts < :e), "
                "(select sum(energy_kwh) from raw.meter_readings where ts >= :s and ts < :e), "
                "(select md5(string_agg(meter_id || ts::text || energy_kwh::text, ',' order by meter_id, ts)) "
                " from raw.meter_readings where ts >= :s and ts < :e), "
                "(select count(*) from raw.meter_readings_rejected)"
            ), {"s": HOUR, "e": HOUR + timedelta(hours=1)}).one())
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_malformed_lines_are_quarantined_and_the_rest_loads(engine, warehouse, resources):
    lines = [
        "ts,meter_id,facility_id,interval_s,energy_kwh,active_power_kw,reactive_power_kvar,voltage_v,current_a,power_factor,frequency_hz,energy_source",
        f"{at(0)},MTR-0001-01,FAC-0001,60,1.5,90.0,10.0,230.0,130.0,0.95,50.0,grid",
        f"{at(1)},MTR-0001-01,FAC-0001,60,lots,90.0,10.0,230.0,130.0,0.95,50.0,grid",
        "2026-13-45T99:00:00Z,MTR-0001-01,FAC-0001,60,1.5,90.0,10.0,230.0,130.0,0.95,50.0,grid",
        f"{at(3)},MTR-0001-01,FAC-0001,60,1.5,90.0",
        f"{at(4)},MTR-0001-02,FAC-0001,60,1.5,90.0,10.0,230.0,130.0,0.95,50.0,grid",
    ]

    async def readings(request):
        return Response("\n".join(lines) + "\n", media_type="text/csv")

    with BackgroundServer(Starlette(routes=[Route("/v1/readings", readings)])) as server:
        broken = {**resources, "telemetry_api": TelemetryApiResource(base_url=server.url)}
        result = materialize([meter_readings], resources=broken, partition_key=KEY)
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["malformed_delivery"].value is True
    assert metadata["rejected/malformed_value"].value == 2
    assert metadata["rejected/malformed_row"].value == 1
    assert metadata["rows_loaded_in_run"].value == 2
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select reason, ts, energy_kwh from raw.meter_readings_rejected where window_start = :s order by line"
        ), {"s": HOUR}).all()
    assert [(r.reason, r.ts, r.energy_kwh) for r in rows] == [
        ("malformed_value", at(1), "lots"),
        ("malformed_value", "2026-13-45T99:00:00Z", "1.5"),
        ("malformed_row", at(3), "1.5"),
    ]


def test_an_empty_registry_stops_the_load_instead_of_quarantining_everything(warehouse, dirty_simulator):
    from tests.conftest import create_database, drop_database

    server = warehouse.with_name("postgres")
    empty = create_database(server, "wattline_empty")
    try:
        result = materialize([meter_readings], resources=source_resources(empty, dirty_simulator.url), partition_key=KEY, raise_on_error=False)
        assert not result.success
        error = result.get_step_failure_events()[0].step_failure_data.error
        assert "registry is empty" in (error.cause.message if error.cause else error.message)
    finally:
        drop_database(server, empty)


def at(minute: int) -> str:
    """A timestamp `minute` minutes into the test hour, as the head-end writes it."""
    return (HOUR + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load_delivery(resources, lines: list[str | bytes], key: str = KEY):
    """Materialise the hour from a head-end that sends `lines`; returns the run's metadata."""

    body = b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n"

    async def readings(request):
        return Response(body, media_type="text/csv")

    with BackgroundServer(Starlette(routes=[Route("/v1/readings", readings)])) as server:
        result = materialize([meter_readings], resources={**resources, "telemetry_api": TelemetryApiResource(base_url=server.url)}, partition_key=key)
    assert result.success
    return {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}


HEADER = "ts,meter_id,facility_id,interval_s,energy_kwh,active_power_kw,reactive_power_kvar,voltage_v,current_a,power_factor,frequency_hz,energy_source"


@pytest.mark.parametrize("malformed_line", [False, True], ids=["fast path", "slow path"])
def test_an_empty_meter_id_is_quarantined_and_the_good_rows_load(engine, resources, malformed_line):
    """Regression: an empty meter_id (null, as COPY reads it) broke the load table's NOT
    NULL, which aborted the whole hour before the missing_value rule could see the row."""
    lines = [
        HEADER,
        f"{at(0)},MTR-0001-01,FAC-0001,60,1.5,90.0,10.0,230.0,130.0,0.95,50.0,grid",
        f"{at(1)},,FAC-0001,60,1.5,90.0,10.0,230.0,130.0,0.95,50.0,grid",
        f"{at(2)},MTR-0001-02,FAC-0001,60,1.5,90.0,10.0,230.0,130.0,0.95,50.0,grid",
        *([f"{at(3)},MTR-0001-01,FAC-0001,60,lots,90.0,10.0,230.0,130.0,0.95,50.0,grid"] if malformed_line else []),
    ]
    metadata = _load_delivery(resources, lines)
    assert metadata["malformed_delivery"] is malformed_line
    assert metadata["rejected/missing_value"] == 1
    assert metadata["rows_loaded_in_run"] == 2
    with engine.connect() as conn:
        loaded = conn.execute(sa.text(
            "select meter_id from raw.meter_readings where ts >= :s and ts < :e order by ts"), {"s": HOUR, "e": HOUR + timedelta(hours=1)}).scalars().all()
        rejected = conn.execute(sa.text(
            "select reason, ts, meter_id from raw.meter_readings_rejected where window_start = :s"), {"s": HOUR}).all()
    assert loaded == ["MTR-0001-01", "MTR-0001-02"]
    assert sorted(r.reason for r in rejected) == [*(["malformed_value"] if malformed_line else []), "missing_value"]
    [missing] = [r for r in rejected if r.reason == "missing_value"]
    assert missing.meter_id is None and pd.Timestamp(missing.ts) == pd.Timestamp(at(1))


def test_quoted_fields_load_on_the_slow_path_too(engine, resources):
    """Regression: the slow path split lines on every comma, quotes and all, so a quoted
    "grid" (or "1.5", or "grid,pv") that the fast path loads was rejected as soon as
    another line of the delivery was malformed."""
    lines = [
        HEADER,
        f'{at(0)},MTR-0001-01,FAC-0001,60,1.5,90.0,10.0,230.0,130.0,0.95,50.0,"grid"',
        f"{at(1)},MTR-0001-01,FAC-0001,60,lots,90.0,10.0,230.0,130.0,0.95,50.0,grid",
        f'"{at(2)}","MTR-0001-02",FAC-0001,"60","2.5",90.0,10.0,230.0,130.0,0.95,50.0,"grid,pv ""north"""',
    ]
    metadata = _load_delivery(resources, lines)
    assert metadata["malformed_delivery"] is True
    assert metadata["rows_loaded_in_run"] == 2
    assert {k: v for k, v in metadata.items() if k.startswith("rejected/")} == {"rejected/malformed_value": 1}
    with engine.connect() as conn:
        loaded = conn.execute(sa.text(
            "select meter_id, interval_s, energy_kwh, energy_source from raw.meter_readings where ts >= :s and ts < :e order by ts"
        ), {"s": HOUR, "e": HOUR + timedelta(hours=1)}).all()
    assert [tuple(r) for r in loaded] == [("MTR-0001-01", 60, 1.5, "grid"), ("MTR-0001-02", 60, 2.5, 'grid,pv "north"')]


def test_the_same_bad_lines_in_two_hours_are_kept_for_each(engine, resources):
    """Regression: a rejected line was keyed by its text alone, so an identical bad line
    (an empty row, the same garbage) delivered in another hour was counted but not kept."""
    lines = [HEADER, ",,,,,,,,,,,", "garbage that is no reading"]
    earlier = HOUR - timedelta(hours=1)
    for hour in (earlier, HOUR):
        metadata = _load_delivery(resources, lines, hour.strftime("%Y-%m-%d-%H:%M"))
        assert metadata["rejected/missing_value"] == 1 and metadata["rejected/malformed_row"] == 1
    with engine.connect() as conn:
        kept = conn.execute(sa.text(
            "select window_start, reason from raw.meter_readings_rejected where window_start = any(:hours) order by 1, 2"
        ), {"hours": [earlier, HOUR]}).all()
    assert [(w, r) for w, r in kept] == [(earlier, "malformed_row"), (earlier, "missing_value"), (HOUR, "malformed_row"), (HOUR, "missing_value")]


def test_a_nul_or_invalid_utf8_costs_its_line_not_the_hour(engine, resources):
    """Regression: a NUL byte or invalid UTF-8 in one line failed the whole hour on both
    paths (no text column holds them, so even the slow path's staging refused it)."""
    lines = [
        HEADER,
        f"{at(0)},MTR-0001-01,FAC-0001,60,1.5,90.0,10.0,230.0,130.0,0.95,50.0,grid",
        f"{at(1)},MTR-0001-01,FAC-0001,60,1.5\x00,90.0,10.0,230.0,130.0,0.95,50.0,grid".encode(),
        f"{at(2)},MTR-0001-01,FAC-0001,60,1.5,90.0,10.0,230.0,130.0,0.95,50.0,".encode() + b"gr\xffid",
        f"{at(3)},MTR-0001-02,FAC-0001,60,2.5,90.0,10.0,230.0,130.0,0.95,50.0,gr\u00fcn-strom",
    ]
    metadata = _load_delivery(resources, lines)
    assert metadata["malformed_delivery"] is True
    assert {k: v for k, v in metadata.items() if k.startswith("rejected/")} == {"rejected/invalid_bytes": 2}
    assert metadata["rows_received"] == 4 and metadata["rows_loaded_in_run"] == 2
    with engine.connect() as conn:
        loaded = conn.execute(sa.text(
            "select meter_id, energy_kwh, energy_source from raw.meter_readings where ts >= :s and ts < :e order by ts"
        ), {"s": HOUR, "e": HOUR + timedelta(hours=1)}).all()
        rejected = conn.execute(sa.text(
            "select line, reason, ts, energy_kwh, energy_source from raw.meter_readings_rejected where window_start = :s order by line"
        ), {"s": HOUR}).all()
    # Valid UTF-8 beyond ASCII is text like any other.
    assert [tuple(r) for r in loaded] == [("MTR-0001-01", 1.5, "grid"), ("MTR-0001-02", 2.5, "grün-strom")]
    # Kept, with the bytes no column can hold written out.
    assert [tuple(r) for r in rejected] == [
        (2, "invalid_bytes", at(1), "1.5\\x00", "grid"),
        (3, "invalid_bytes", at(2), "1.5", "gr\\xffid"),
    ]
