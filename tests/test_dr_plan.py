"""The reduction plan asset on the simulated fleet (an office in Berlin, a data centre
in New York, their catalogue rows from the dbt seed): a modest target is met interval
by interval within every action's limits; a target beyond the catalogue is planned with
its shortfall recorded, in the mart, the inbox and a warning check."""

import re
from collections import defaultdict
from datetime import timedelta

import pytest
import sqlalchemy as sa
from dagster import AssetCheckSeverity

from assets.demand_response import PLAN, dr_baseline, dr_reduction_plan
from tests.conftest import FLEET_END, add_dr_event, dr_run, undocumented_columns

# Thursday 2 April 2026, 10:00–12:00 UTC: midday in Berlin, early morning in New York.
START = FLEET_END - timedelta(hours=14)
END = START + timedelta(hours=2)
SLOTS = [START + timedelta(minutes=15 * i) for i in range(8)]


def plan_rows(engine, event_id):
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "select * from marts.fct_dr_reduction_plan where event_id = :e order by facility_id, interval_start, action_id"
        ), {"e": event_id}).mappings().all()


def baselines(engine, event_id):
    with engine.connect() as conn:
        return {
            (f, t): kw for f, t, kw in conn.execute(sa.text(
                "select facility_id, interval_start, baseline_kw from marts.fct_dr_baseline where event_id = :e"
            ), {"e": event_id})
        }


def inbox(engine, event_id):
    with engine.connect() as conn:
        return conn.execute(sa.text("select * from ops.dr_events where event_id = :e"), {"e": event_id}).mappings().one()


def plan_check(result):
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "plan_meets_the_target"]
    return check


def catalogue(engine):
    with engine.connect() as conn:
        return {r["action_id"]: r for r in conn.execute(sa.text("select * from staging.curtailment_catalogue")).mappings()}


def test_a_reachable_target_is_met_in_every_interval_within_each_actions_limits(simulated_fleet):
    database, engine = simulated_fleet
    add_dr_event(engine, "PLAN-10", "v1", ["FAC-0001", "FAC-0002"], START, END, pct=10)
    result = dr_run(database, [dr_baseline, dr_reduction_plan], "PLAN-10@v1")
    assert result.success
    rows, baseline, actions = plan_rows(engine, "PLAN-10"), baselines(engine, "PLAN-10"), catalogue(engine)

    # Net of any load an action gives back inside the window (phase rebound, negative).
    net_shed = defaultdict(float)
    for row in rows:
        net_shed[(row["facility_id"], row["interval_start"])] += row["shed_kw"]
    for facility_id in ("FAC-0001", "FAC-0002"):
        for slot in SLOTS:
            interval = [r for r in rows if r["facility_id"] == facility_id and r["interval_start"] == slot]
            assert interval, (facility_id, slot)
            first = interval[0]
            assert first["baseline_kw"] == pytest.approx(baseline[(facility_id, slot)], abs=1e-3)
            assert first["target_kw"] == pytest.approx(0.10 * baseline[(facility_id, slot)], abs=1e-3)
            # Met exactly: the last action runs only as far as needed.
            assert net_shed[(facility_id, slot)] == pytest.approx(first["target_kw"], abs=1e-3)
            assert first["shortfall_kw"] == 0
            assert first["expected_load_kw"] == pytest.approx(first["baseline_kw"] - first["target_kw"], abs=1e-3)

    minutes = defaultdict(int)
    for row in rows:
        if row["phase"] != "event" or row["action_id"] is None:
            continue
        action = actions[row["action_id"]]
        assert action["facility_id"] == row["facility_id"]
        assert row["shed_kw"] > 0
        if action["max_shed_kw"] is not None:
            assert row["shed_kw"] <= action["max_shed_kw"] + 1e-6
        minutes[row["action_id"]] += 15
    assert minutes and all(m <= actions[a]["max_duration_min"] for a, m in minutes.items())

    event = inbox(engine, "PLAN-10")
    assert event["status"] == "planned" and event["shortfall_kwh"] == 0 and event["status_reason"] is None
    assert event["target_kwh"] == pytest.approx(sum(0.10 * kw for kw in baseline.values()) * 0.25, rel=1e-3)
    check = plan_check(result)
    assert check.passed
    [metadata] = [
        e.materialization.metadata for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == PLAN
    ]
    assert metadata["plots"].value.count("data:image/png;base64,") == 2
    assert undocumented_columns(engine, "marts.fct_dr_reduction_plan") == []


def test_a_target_beyond_the_catalogue_is_planned_with_its_shortfall(simulated_fleet):
    database, engine = simulated_fleet
    add_dr_event(engine, "PLAN-60", "v1", ["FAC-0001", "FAC-0002"], START, END, pct=60)
    result = dr_run(database, [dr_baseline, dr_reduction_plan], "PLAN-60@v1")
    assert result.success  # a shortfall is a finding, not a failed run
    rows = plan_rows(engine, "PLAN-60")
    intervals = {(r["facility_id"], r["interval_start"]): r for r in rows if r["phase"] == "event"}
    assert len(intervals) == 16
    short = sum(r["shortfall_kw"] for r in intervals.values()) * 0.25
    assert short > 0

    event = inbox(engine, "PLAN-60")
    assert event["status"] == "planned"
    assert event["shortfall_kwh"] == pytest.approx(short, abs=0.01)
    assert event["planned_shed_kwh"] + event["shortfall_kwh"] == pytest.approx(event["target_kwh"], rel=1e-3)
    assert f"{event['shortfall_kwh']:.1f} kWh short" in event["status_reason"]
    check = plan_check(result)
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert "kWh short" in check.description


def test_a_facility_without_a_catalogue_gets_its_whole_target_as_shortfall(simulated_fleet):
    database, engine = simulated_fleet
    with engine.begin() as conn:
        conn.execute(sa.text("create temporary table saved as select * from staging.curtailment_catalogue where facility_id = 'FAC-0002'"))
        conn.execute(sa.text("delete from staging.curtailment_catalogue where facility_id = 'FAC-0002'"))
    try:
        add_dr_event(engine, "PLAN-NONE", "v1", ["FAC-0002"], START, END, pct=10)
        assert dr_run(database, [dr_baseline, dr_reduction_plan], "PLAN-NONE@v1").success
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("insert into staging.curtailment_catalogue select * from saved"))
    event = inbox(engine, "PLAN-NONE")
    assert event["planned_shed_kwh"] == 0 and event["shortfall_kwh"] == pytest.approx(event["target_kwh"])
    assert "FAC-0002 has no actions in the curtailment catalogue" in event["status_reason"]
    assert all(r["action_id"] is None for r in plan_rows(engine, "PLAN-NONE"))


def test_a_run_of_several_event_versions_plans_each_as_its_own_run_would(simulated_fleet):
    """A burst's run (a range of event partitions) writes each version's baseline and plan
    once, the same rows a run of that version alone writes, whichever other days and
    facilities share the run (the run reads what its events share once)."""
    database, engine = simulated_fleet
    events = [
        (5, ["FAC-0001", "FAC-0002"], START), (10, ["FAC-0001", "FAC-0002"], START), (15, ["FAC-0001", "FAC-0002"], START),
        # Another day (other end-use shares and history), one facility of the others; the
        # day after, so that it is no earlier event day in another test's baseline.
        (10, ["FAC-0002"], START + timedelta(days=1)),
    ]
    keys = []
    for n, (pct, facilities, start) in enumerate(events):
        add_dr_event(engine, f"RANGE-{n}", "v1", facilities, start, start + (END - START), pct=pct)
        keys.append(f"RANGE-{n}@v1")
    result = dr_run(database, [dr_baseline, dr_reduction_plan], keys)
    assert result.success
    materialised = sorted((e.asset_key.path[-1], e.partition) for e in result.get_asset_materialization_events())
    assert materialised == sorted((asset, key) for asset in ("fct_dr_baseline", "fct_dr_reduction_plan") for key in keys)
    together = {n: [dict(r, created_at=None) for r in plan_rows(engine, f"RANGE-{n}")] for n in range(len(events))}
    assert all(together.values()) and all(inbox(engine, f"RANGE-{n}")["status"] == "planned" for n in together)

    for n in (1, 3):
        assert dr_run(database, [dr_baseline, dr_reduction_plan], f"RANGE-{n}@v1").success
        assert [dict(r, created_at=None) for r in plan_rows(engine, f"RANGE-{n}")] == together[n]
    # Different targets, different plans: the run did not plan one event three times.
    assert together[0] != together[2]


def test_the_demo_summary_adds_up_and_its_reason_names_only_facilities_short(simulated_fleet, capsys):
    """The demo printed per-facility shed adding to 114.1 kWh under a headline of 112.0 (it
    summed the event phase's rows, the inbox the shed net of rebound inside the window),
    and the shortfall's reason named facilities whose shortfall was 0. A call 20 minutes
    ahead: the data centre's actions need 30 and 60 minutes of notice, so it is short at
    first; the office meets its target without the pre-cooling that notice rules out."""
    from orchestration.demo import print_dr_plan

    database, engine = simulated_fleet
    add_dr_event(engine, "PLAN-SUM", "v1", ["FAC-0001", "FAC-0002"], START, END, pct=10, received_at=START - timedelta(minutes=20))
    assert dr_run(database, [dr_baseline, dr_reduction_plan], "PLAN-SUM@v1").success
    capsys.readouterr()
    print_dr_plan(engine, "PLAN-SUM", "v1")
    printed = capsys.readouterr().out
    headline = re.search(r"(\d+\.\d) of (\d+\.\d) kWh planned", printed)
    rows = {
        m["facility"]: (float(m["target"]), float(m["shed"]), float(m["short"]))
        for m in re.finditer(r"^  (?P<facility>FAC-\d{4}) +\S+ \S+ +(?P<target>\d+\.\d) +(?P<shed>\d+\.\d) +(?P<short>\d+\.\d) ", printed, re.M)
    }
    assert headline and set(rows) == {"FAC-0001", "FAC-0002"}, printed
    # Each printed figure is rounded to 0.1 kWh: the sum may differ from the headline by that much per row.
    tolerance = 0.05 * len(rows) + 1e-9
    assert abs(sum(shed for _, shed, _ in rows.values()) - float(headline[1])) <= tolerance, printed
    assert abs(sum(target for target, _, _ in rows.values()) - float(headline[2])) <= tolerance, printed

    event = inbox(engine, "PLAN-SUM")
    assert rows["FAC-0002"][2] > 0 and rows["FAC-0001"][2] == 0, printed
    assert "FAC-0002" in event["status_reason"]
    assert "FAC-0001" not in event["status_reason"], event["status_reason"]
    # The inbox's figures and the mart's rows are one account: shed and shortfall make the target.
    # Each of the three is stored rounded to 0.001 kWh: they add up within 3 × 0.0005.
    assert event["planned_shed_kwh"] + event["shortfall_kwh"] == pytest.approx(event["target_kwh"], abs=0.0015 + 1e-9)
    with engine.connect() as conn:
        in_window = conn.scalar(sa.text(
            "select sum(shed_kw) * 0.25 from marts.fct_dr_reduction_plan "
            "where event_id = 'PLAN-SUM' and interval_start >= :s and interval_start < :e"
        ), {"s": START, "e": END})
    assert event["planned_shed_kwh"] == pytest.approx(in_window, abs=1e-3)
