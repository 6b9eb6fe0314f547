"""The Great Expectations checks as Dagster runs see them: a head-end outage that delivers
a mostly empty hour fails the blocking readings check, and the dbt model downstream is
not built on it; a complete hour passes and builds. The feed checks judge their day."""

from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
from dagster import AssetKey, AssetSelection, Definitions, define_asset_job, materialize

from assets.dbt_models import dbt_incremental_models, dbt_models
from assets.source_checks import readings_expectations, weather_expectations
from assets.telemetry import meter_readings
from assets.weather import weather_hourly
from orchestration.partitions import daily_partitions
from resources.dbt import dbt_cli
from simulator.config import SimulatorConfig
from simulator.fleet import build_fleet
from simulator.modes import ModeWindow
from simulator.server import SimulatorServer
from tests.conftest import load_registry, source_resources

NOW = datetime(2026, 1, 6, 12, tzinfo=UTC)
SEED, FACILITIES = 11, 3  # test_telemetry_load's world: the same registry
GOOD_HOUR = datetime(2026, 1, 3, 8, tzinfo=UTC)
OUTAGE_HOUR = datetime(2026, 1, 3, 9, tzinfo=UTC)
FCT = AssetKey(["marts", "fct_load_15min"])


@pytest.fixture(scope="module")
def simulator():
    # Every facility's head-end goes quiet 20 minutes into the outage hour: a third of it arrives.
    fleet = build_fleet(SEED, FACILITIES, 60)
    outage = tuple(
        ModeWindow(f.facility_id, "outage", OUTAGE_HOUR + timedelta(minutes=20), OUTAGE_HOUR + timedelta(hours=1))
        for f in fleet.facilities
    )
    config = SimulatorConfig(seed=SEED, facilities=FACILITIES, interval_s=60, now=lambda: NOW, modes=outage)
    with SimulatorServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def resources(warehouse, simulator, dbt_manifest):
    load_registry(warehouse, simulator.url)
    resources = {**source_resources(warehouse, simulator.url, max_retries=0), "dbt": dbt_cli()}
    assert materialize([dbt_models], resources=resources).success  # the staging views
    return resources


def fct_rows(engine, hour: datetime) -> int:
    with engine.connect() as conn:
        return conn.scalar(
            sa.text("select count(*) from marts.fct_load_15min where interval_start >= :s and interval_start < :e"),
            {"s": hour, "e": hour + timedelta(hours=1)},
        )


def run(resources, hour: datetime):
    # The staging view joins the run so that the marts depend on the readings within it:
    # a blocking check acts on what runs after it in the same run.
    return materialize(
        [meter_readings, readings_expectations, dbt_models, dbt_incremental_models],
        resources=resources,
        partition_key=f"{hour:%Y-%m-%d-%H}:00",
        raise_on_error=False,
    )


def test_a_complete_hour_passes_and_the_marts_build(engine, resources):
    result = run(resources, GOOD_HOUR)
    assert result.success
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "readings_expectations"]
    assert check.passed
    assert check.metadata["row_count"].value > 0
    assert FCT in {e.asset_key for e in result.get_asset_materialization_events()}
    assert fct_rows(engine, GOOD_HOUR) == FACILITIES * 4


def test_an_outage_hour_fails_the_blocking_check_and_the_marts_are_not_built_on_it(engine, resources):
    result = run(resources, OUTAGE_HOUR)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "readings_expectations"]
    assert not check.passed
    # The check says why, in words an operator can act on.
    assert "row" in check.description and "at least" in check.description, check.description
    assert "expect_table_row_count_to_be_between" in check.metadata["failures"].value
    # The readings that did arrive are loaded (nothing is lost) ...
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert AssetKey(["raw", "meter_readings"]) in materialized
    with engine.connect() as conn:
        loaded = conn.scalar(
            sa.text("select count(*) from raw.meter_readings where ts >= :s and ts < :e"),
            {"s": OUTAGE_HOUR, "e": OUTAGE_HOUR + timedelta(hours=1)},
        )
    assert loaded > 0
    # ... but the model downstream did not build on them.
    assert FCT not in materialized
    assert fct_rows(engine, OUTAGE_HOUR) == 0


def test_the_first_load_of_an_hour_owes_only_what_had_ended_when_the_head_end_answered(engine, resources):
    # The schedule's :00 tick: the head-end's clock is at the top of the hour, so not one
    # reading of it has ended. The check runs later (here: about a year later, by our
    # clock) and must judge the hour as of the head-end's answer, not fail it as an outage.
    open_hour = NOW
    result = run(resources, open_hour)
    assert result.success
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "readings_expectations"]
    assert check.passed, check.description
    assert check.metadata["row_count"].value == 0
    [load] = [e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey(["raw", "meter_readings"])]
    # The simulator dates its answers by its own clock, as a head-end does.
    assert load.materialization.metadata["loaded_as_of"].value == NOW.timestamp()
    assert FCT in {e.asset_key for e in result.get_asset_materialization_events()}


def test_a_day_of_weather_is_checked_against_the_facilities(engine, resources, warehouse):
    day = "2026-01-02"
    result = materialize([weather_hourly, weather_expectations], resources=resources, partition_key=day)
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["row_count"].value == FACILITIES * 24

    # A sensor fault upstream: impossible humidity in three hours. The check warns and names it.
    with engine.begin() as conn:
        conn.execute(sa.text(
            "update raw.weather_hourly set relative_humidity_pct = 130 "
            "where time >= '2026-01-02T00:00Z' and time < '2026-01-02T03:00Z' and facility_id = "
            "(select min(facility_id) from raw.facilities where active)"
        ))
    # The check alone, as an operator reruns it from the UI.
    recheck = define_asset_job("recheck", AssetSelection.checks(weather_expectations), partitions_def=daily_partitions)
    defs = Definitions(assets=[weather_hourly], asset_checks=[weather_expectations], jobs=[recheck], resources=resources)
    # By tag: Dagster 1.13 validates a partition_key argument against selected assets only.
    result = defs.resolve_job_def("recheck").execute_in_process(tags={"dagster/partition": day}, raise_on_error=False)
    assert not result.get_asset_materialization_events()
    [check] = result.get_asset_check_evaluations()
    assert not check.passed
    assert check.severity.value == "WARN"
    assert "relative_humidity_pct" in check.description and "3 of" in check.description, check.description


@pytest.mark.parametrize(
    "date, expected",
    [
        ("Tue, 06 Jan 2026 12:00:05 GMT", datetime(2026, 1, 6, 12, 0, 5, tzinfo=UTC)),
        # A head-end clock ahead of ours cannot make the check owe readings from the future.
        ("Fri, 01 Jan 2100 00:00:00 GMT", "now"),
        ("yesterday", None),
        ("", None),
    ],
)
def test_a_delivery_is_dated_by_the_origin_never_past_our_clock(date, expected):
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from resources.http import answered_at
    from simulator.server import BackgroundServer

    app = Starlette(routes=[Route("/", lambda request: Response("ok", headers={"Date": date} if date else {}))])
    with BackgroundServer(app, date_header=False) as origin:
        before = datetime.now(UTC)
        stamp = answered_at(requests.get(origin.url, timeout=10))
    if expected == "now":
        assert before <= stamp <= datetime.now(UTC)
    else:
        assert stamp == expected
