"""Dispatch and measurement end to end on the simulated fleet: a planned event's actions
go to the simulator's building-management system over HTTP, the simulated buildings draw
that much less, the reloaded telemetry shows it interval by interval, the performance
mart measures it and the lifecycle sensor closes the event."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
from dagster import DagsterInstance, SkipReason, build_sensor_context, materialize

from assets.dbt_models import dbt_derived_models, dbt_incremental_models
from assets.demand_response import dr_baseline, dr_reduction_plan
from assets.dr_dispatch import dr_dispatch
from assets.telemetry import meter_readings
from orchestration.runs import hourly_range_tags
from resources.bms import BmsResource
from resources.dbt import dbt_cli
from resources.postgres import PostgresResource
from sensors.dr_lifecycle import dr_lifecycle_sensor
from simulator.bms_api import DISPATCH_PATH
from simulator.server import SimulatorServer
from tests.conftest import (
    FLEET_END,
    add_dr_event,
    dr_run,
    failure_text,
    fleet_simulator_config,
    source_resources,
)

# The last hour of the fleet's data: Thursday 2 April 2026, 23:00–24:00 UTC (01:00 in
# Berlin, 19:00 in New York). Nothing later in the test session reads it.
START, END = FLEET_END - timedelta(hours=1), FLEET_END


def quarter_hours(engine, facility_ids):
    with engine.connect() as conn:
        return {
            (f, t): kwh for f, t, kwh in conn.execute(sa.text(
                "select facility_id, interval_start, grid_energy_kwh from marts.fct_load_15min "
                "where facility_id = any(:f) and interval_start >= :s and interval_start < :e"
            ), {"f": facility_ids, "s": START, "e": END})
        }


def evaluate_lifecycle(database):
    with build_sensor_context(instance=DagsterInstance.ephemeral(), resources={"postgres": PostgresResource(url=database.url)}) as context:
        return dr_lifecycle_sensor(context)


def test_a_dispatched_plan_lowers_the_telemetry_and_is_measured(simulated_fleet):
    database, engine = simulated_fleet
    facilities = ["FAC-0001", "FAC-0002"]
    add_dr_event(engine, "DISP-1", "v1", facilities, START, END, pct=10)
    assert dr_run(database, [dr_baseline, dr_reduction_plan], "DISP-1@v1").success
    before = quarter_hours(engine, facilities)
    with engine.connect() as conn:
        plan = conn.execute(sa.text(
            "select facility_id, interval_start, shed_kw from marts.fct_dr_reduction_plan "
            "where event_id = 'DISP-1' and action_id is not null"
        )).all()
    planned = defaultdict(float)
    for facility_id, start, shed_kw in plan:
        planned[(facility_id, start)] += shed_kw * 0.25
    assert sum(planned.values()) > 0

    with SimulatorServer(fleet_simulator_config()) as server:
        bms = BmsResource(url=f"{server.url}{DISPATCH_PATH}", max_retries=0)
        dispatched = dr_run(database, [dr_dispatch], "DISP-1@v1", bms=bms)
        assert dispatched.success
        # Sent twice (an operator's re-execution): the BMS holds one schedule per facility.
        assert dr_run(database, [dr_dispatch], "DISP-1@v1", bms=bms).success
        commands = server.app.state.commands.dispatches()
        assert sorted(d["dispatch_id"] for d in commands) == ["DISP-1@v1/FAC-0001", "DISP-1@v1/FAC-0002"]
        assert sum(len(d["commands"]) for d in commands) == len(plan)

        # The hour's telemetry again, now that the buildings follow the plan, and its marts.
        resources = {**source_resources(database, server.url, max_retries=0), "dbt": dbt_cli()}
        tags = hourly_range_tags(START, END)
        assert materialize([meter_readings], resources=resources, tags=tags).success
        assert materialize([dbt_incremental_models, dbt_derived_models], resources=resources, tags=tags).success

    with engine.connect() as conn:
        event = conn.execute(sa.text("select status from ops.dr_events where event_id = 'DISP-1'")).scalar_one()
        attempts = conn.execute(sa.text("select status, count(*) from ops.dr_dispatches where event_id = 'DISP-1' group by 1")).all()
    assert event == "active" and attempts == [("accepted", 4)]

    after = quarter_hours(engine, facilities)
    assert len(after) == len(before) == 8
    for key, kwh in before.items():
        # Each meter's noise (4 % standard deviation, bounded at ±9.8 %) rides on the drop too.
        assert kwh - after[key] == pytest.approx(planned.get(key, 0.0), rel=0.1, abs=0.05), key

    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select * from marts.fct_dr_event_performance where event_id = 'DISP-1' order by facility_id"
        )).mappings().all()
    assert [r["facility_id"] for r in rows] == facilities
    for row in rows:
        assert row["measured_interval_count"] == row["interval_count"] == 4
        assert row["actual_kwh"] == pytest.approx(sum(after[(row["facility_id"], START + timedelta(minutes=15 * i))] for i in range(4)), abs=2e-3)
        assert row["reduction_kwh"] == pytest.approx(row["baseline_kwh"] - row["actual_kwh"], abs=2e-3)
        assert row["reduction_kw"] == pytest.approx(row["reduction_kwh"], abs=2e-3)  # a one-hour event
        # The programme's rule (dbt var dr_pass_ratio, 0.8): a facility completes the event
        # when it shed at least 80 % of its target.
        assert row["status"] == ("completed" if row["reduction_kwh"] >= 0.8 * row["target_kwh"] else "failed"), row

    # The lifecycle sensor closes the measured event from the mart.
    result = evaluate_lifecycle(database)
    with engine.connect() as conn:
        status, reason = conn.execute(sa.text("select status, status_reason from ops.dr_events where event_id = 'DISP-1'")).one()
    expected = "failed" if any(r["status"] == "failed" for r in rows) else "completed"
    assert status == expected
    assert reason.startswith(f"reduced {sum(r['reduction_kwh'] for r in rows):.1f} of {sum(r['target_kwh'] for r in rows):.1f} kWh asked")
    # Closed: nothing is requested for it, then or at the next evaluation.
    for evaluation in (result, evaluate_lifecycle(database)):
        requested = [] if isinstance(evaluation, SkipReason) else [r.run_key or "" for r in evaluation.run_requests]
        assert not [key for key in requested if "DISP-1" in key]


def test_the_lifecycle_sensor_dispatches_on_time_and_fails_missed_events(simulated_fleet):
    database, engine = simulated_fleet
    now = datetime.now(UTC)
    add_dr_event(engine, "LIFE-SOON", "v1", ["FAC-0001"], now + timedelta(minutes=1), now + timedelta(hours=1), status="planned")
    add_dr_event(engine, "LIFE-LATER", "v1", ["FAC-0001"], now + timedelta(hours=2), now + timedelta(hours=3), status="planned")
    add_dr_event(engine, "LIFE-MISSED", "v1", ["FAC-0001"], now - timedelta(hours=2), now - timedelta(hours=1), status="planned")
    # A revised event: only its latest version is dispatched.
    add_dr_event(engine, "LIFE-REVISED", "v1", ["FAC-0001"], now + timedelta(minutes=1), now + timedelta(hours=1), status="planned")
    add_dr_event(engine, "LIFE-REVISED", "v2", ["FAC-0001"], now + timedelta(minutes=1), now + timedelta(hours=1), status="planned")

    result = evaluate_lifecycle(database)
    keys = sorted(r.run_key for r in result.run_requests if r.run_key.startswith("dispatch:LIFE-"))
    assert keys == ["dispatch:LIFE-REVISED@v2", "dispatch:LIFE-SOON@v1"]
    assert {r.job_name for r in result.run_requests if r.run_key in keys} == {"dr_dispatch_job"}
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.text(
            "select event_id || '@' || version, status || coalesce(': ' || status_reason, '') from ops.dr_events where event_id like 'LIFE-%'"
        )).all())
    assert statuses["LIFE-MISSED@v1"] == "failed: the event ended before its plan was dispatched"
    assert statuses["LIFE-LATER@v1"] == statuses["LIFE-SOON@v1"] == "planned"


def test_a_failing_bms_is_retried_and_every_attempt_recorded(simulated_fleet):
    database, engine = simulated_fleet
    add_dr_event(engine, "DISP-RETRY", "v1", ["FAC-0001"], START, END, pct=10)
    assert dr_run(database, [dr_baseline, dr_reduction_plan], "DISP-RETRY@v1").success
    with SimulatorServer(fleet_simulator_config()) as server:
        url = f"{server.url}{DISPATCH_PATH}"
        # Two 503s, then the BMS answers: urllib3's Retry carries the POST through.
        requests.post(f"{server.url}/v1/sim/faults", json={"path_prefix": DISPATCH_PATH, "kind": "error", "count": 2}, timeout=5)
        assert dr_run(database, [dr_dispatch], "DISP-RETRY@v1", bms=BmsResource(url=url, max_retries=2, backoff_factor=0.01)).success
        # Down for longer than the retries: the run fails, says why, and the attempt is kept.
        requests.post(f"{server.url}/v1/sim/faults", json={"path_prefix": DISPATCH_PATH, "kind": "error", "status": 500, "count": 5}, timeout=5)
        failed = dr_run(database, [dr_dispatch], "DISP-RETRY@v1", bms=BmsResource(url=url, max_retries=1, backoff_factor=0.01), raise_on_error=False)
        assert not failed.success
        assert "the BMS did not accept 1 of 1 dispatches" in failure_text(failed)
    with engine.connect() as conn:
        attempts = conn.execute(sa.text(
            "select status, answer from ops.dr_dispatches where event_id = 'DISP-RETRY' order by attempted_at"
        )).all()
        status = conn.scalar(sa.text("select status from ops.dr_events where event_id = 'DISP-RETRY'"))
    assert [a.status for a in attempts] == ["accepted", "failed"]
    assert "answered 500 after retries" in attempts[1].answer
    assert status == "active"  # the first dispatch got through; the failed resend changes nothing
