"""The DR planner and its targets on hand-checked facilities: every expected kW below is
arithmetic on the page (a 15-minute interval is 0.25 h)."""

from datetime import UTC, datetime, timedelta

import pytest

from assets.dr_planner import SLOT, Action, Interval, plan_facility
from assets.dr_targets import interval_targets

START = datetime(2026, 7, 15, 17, 0, tzinfo=UTC)
EARLY = START - timedelta(hours=3)  # when the utility called: notice enough for anything


def action(action_id, end_use, cost, pct=None, kw=None, duration=240, notice=0, priority=1, **extra) -> Action:
    return Action(action_id, action_id, end_use, kw, pct, duration, notice, cost, priority, **extra)


# An office interval: 100 kW of which hvac 50, lighting 20, plug 20, ev 10.
OFFICE = {"hvac": 50.0, "lighting": 20.0, "plug": 20.0, "ev": 10.0}
EV = action("EV", "ev", 1, pct=100)  # 10 kW at cost 1: 0.10 per kW
HVAC = action("HVAC", "hvac", 2, pct=15)  # 7.5 kW at cost 2: 0.27 per kW
LIGHT = action("LIGHT", "lighting", 2, pct=25)  # 5 kW at cost 2: 0.40 per kW


def office(n, target_kw, baseline_kw=100.0):
    return [Interval(START + i * SLOT, baseline_kw, target_kw, dict(OFFICE)) for i in range(n)]


def shed_by(plan, phase="event"):
    result = {}
    for step in plan.steps:
        if step.phase == phase:
            result.setdefault(step.action_id, []).append(round(step.shed_kw, 6))
    return result


def test_cheapest_per_kw_first_until_the_target_is_met():
    plan = plan_facility(office(2, 20.0), [LIGHT, HVAC, EV], EARLY)
    # EV 10 (0.10/kW), then HVAC 7.5 (0.27/kW), then LIGHT only the 2.5 still needed.
    assert shed_by(plan) == {"EV": [10.0, 10.0], "HVAC": [7.5, 7.5], "LIGHT": [2.5, 2.5]}
    assert [i.expected_kw for i in plan.intervals] == [80.0, 80.0]
    assert plan.shortfall_kwh == 0 and plan.target_kwh == pytest.approx(10.0)


def test_the_shortfall_is_what_the_catalogue_cannot_reach():
    plan = plan_facility(office(4, 40.0), [EV, HVAC, LIGHT], EARLY)
    # Everything in full: 10 + 7.5 + 5 = 22.5 kW of 40: 17.5 kW short in each interval.
    assert [i.shed_kw for i in plan.intervals] == [22.5] * 4
    assert [i.shortfall_kw for i in plan.intervals] == [17.5] * 4
    assert plan.shortfall_kwh == pytest.approx(17.5 * 4 * 0.25)


def test_two_actions_on_one_end_use_never_shed_more_than_it_draws():
    big = action("HVAC-BIG", "hvac", 1, pct=80)  # 40 of the 50 kW
    more = action("HVAC-MORE", "hvac", 1, kw=30)  # 30 kW fixed, but only 10 left
    plan = plan_facility(office(1, 60.0), [big, more], EARLY)
    assert shed_by(plan) == {"HVAC-BIG": [40.0], "HVAC-MORE": [10.0]}
    assert plan.intervals[0].shortfall_kw == 10.0


def test_an_action_runs_no_longer_than_its_maximum_duration_and_then_rebounds():
    short = action("EV", "ev", 1, pct=100, duration=30, rebound_min=30, rebound_pct=100)
    plan = plan_facility(office(4, 10.0), [short, HVAC, LIGHT], EARLY)
    steps = shed_by(plan)
    assert steps["EV"] == [10.0, 10.0]  # two intervals = 30 minutes, then out of time
    # It shed 10 kW × 0.5 h = 5 kWh and gives it all back over the next 30 min: 10 kW in
    # intervals 3 and 4, which HVAC and LIGHT must now cover on top of the 10 kW target.
    assert shed_by(plan, "rebound") == {"EV": [-10.0, -10.0]}
    assert [i.rebound_kw for i in plan.intervals] == [0.0, 0.0, 10.0, 10.0]
    assert steps["HVAC"] == [7.5, 7.5] and steps["LIGHT"] == [5.0, 5.0]
    assert [i.shortfall_kw for i in plan.intervals] == [0.0, 0.0, 7.5, 7.5]


def test_an_action_that_runs_twice_gives_back_both_runs_one_step_per_interval():
    ev = action("EV", "ev", 1, pct=100, rebound_min=60, rebound_pct=100)
    targets = [10.0, 0.0, 10.0, 0.0]
    plan = plan_facility([Interval(START + i * SLOT, 100.0, t, dict(OFFICE)) for i, t in enumerate(targets)], [ev], EARLY)
    assert shed_by(plan) == {"EV": [10.0, 10.0]}
    # Each run sheds 10 kW × 0.25 h = 2.5 kWh and gives it back over the hour after it
    # stops (from intervals 3 and 5): 2.5 kW a quarter-hour; where the hours overlap, one
    # step of 5 kW. Two steps of one action in one interval broke the plan's grain.
    rebound = [(step.start, step.shed_kw) for step in plan.steps if step.phase == "rebound"]
    assert rebound == [(START + k * SLOT, kw) for k, kw in zip(range(2, 8), [-2.5, -2.5, -5.0, -5.0, -2.5, -2.5], strict=True)]
    # The second run's interval needed its target plus the first run's rebound: 12.5 kW, 10 shed.
    assert [i.shortfall_kw for i in plan.intervals] == [0.0, 0.0, 2.5, 0.0]


def test_a_battery_stays_within_its_power_and_energy_and_never_exports():
    battery = action("BATT", "battery", 1, kw=5, energy_kwh=10, rebound_min=240, rebound_pct=100)
    home = [Interval(START + i * SLOT, 6.0, 5.5, {"hvac": 3.0, "plug": 3.0}) for i in range(12)]
    plan = plan_facility(home, [battery], EARLY)
    discharge = shed_by(plan)["BATT"]
    # 5 kW (its power) for 8 intervals = 10 kWh (its energy), then empty.
    assert discharge == [5.0] * 8 and sum(discharge) * 0.25 == 10.0
    assert [i.shortfall_kw for i in plan.intervals] == [0.5] * 8 + [5.5] * 4
    # Recharging after the event puts the 10 kWh back over 4 hours: 2.5 kW from the end.
    recharge = [s for s in plan.steps if s.phase == "rebound"]
    assert recharge[0].start == START + 12 * SLOT and len(recharge) == 16
    assert sum(-s.shed_kw for s in recharge) * 0.25 == pytest.approx(10.0)

    # A house drawing 3 kW cannot take 5 kW from its battery: the rest would be exported.
    small = [Interval(START, 3.0, 3.0, {"plug": 3.0})]
    assert shed_by(plan_facility(small, [battery], EARLY)) == {"BATT": [3.0]}


def test_pre_cooling_loads_the_hour_before_and_needs_the_notice_for_it():
    precool = action("PRECOOL", "hvac", 1, pct=20, notice=30, prepare_min=60, prepare_pct=50, rebound_min=30, rebound_pct=20)
    ev = action("EV", "ev", 2, pct=100)  # 0.2 per kW: pre-cooling's 0.1 comes first
    plan = plan_facility(office(4, 10.0), [precool, ev], EARLY)
    assert shed_by(plan) == {"PRECOOL": [10.0] * 4}  # 20 % of the 50 kW of hvac
    # The hour before the event: 50 % of its first interval's 10 kW added.
    prepare = [s for s in plan.steps if s.phase == "prepare"]
    assert [s.start for s in prepare] == [START - k * SLOT for k in (4, 3, 2, 1)]
    assert [s.shed_kw for s in prepare] == [-5.0] * 4
    # After the event, 20 % of the 10 kWh it shed comes back over 30 minutes: 4 kW.
    assert shed_by(plan, "rebound") == {"PRECOOL": [-4.0, -4.0]}
    assert plan.outside_event() == {
        **{START - k * SLOT: 5.0 for k in (4, 3, 2, 1)}, START + 4 * SLOT: 4.0, START + 5 * SLOT: 4.0,
    }

    # Called 60 minutes ahead: 30 min notice + 60 min of pre-cooling do not fit.
    late = plan_facility(office(4, 10.0), [precool, ev], START - timedelta(minutes=60))
    assert "PRECOOL" not in shed_by(late) and late.unusable["PRECOOL"].startswith("it needs 30 min of notice before 60 min")
    assert shed_by(late)["EV"] == [10.0] * 4


def test_an_action_waits_for_its_notice():
    slow = action("PROC", "plug", 1, pct=50, notice=30)
    plan = plan_facility(office(4, 10.0), [slow], START - timedelta(minutes=10))
    # Usable from 20 minutes into the event: intervals 3 and 4 only (17:30, 17:45).
    assert [s.start for s in plan.steps] == [START + 2 * SLOT, START + 3 * SLOT]
    assert [i.shortfall_kw for i in plan.intervals] == [10.0, 10.0, 0.0, 0.0]


def test_targets_percentage_kw_split_and_openadr_intervals():
    t0, t1 = START, START + SLOT
    baseline = {"A": {t0: 100.0, t1: 100.0}, "B": {t0: 300.0, t1: 100.0}}
    assert interval_targets({"target_reduction_pct": 10}, baseline) == {"A": {t0: 10.0, t1: 10.0}, "B": {t0: 30.0, t1: 10.0}}
    # 40 kW split by baseline: 100 : 300 in the first interval, 100 : 100 in the second.
    assert interval_targets({"target_reduction_kw": 40}, baseline) == {"A": {t0: 10.0, t1: 20.0}, "B": {t0: 30.0, t1: 20.0}}
    intervals = [
        {"start": t0.isoformat(), "end": t1.isoformat(), "shed_pct": 20, "import_limit_kw": None, "price": None},
        {"start": t1.isoformat(), "end": (t1 + SLOT).isoformat(), "shed_pct": None, "import_limit_kw": 80.0, "price": None},
    ]
    # SIMPLE level 2 (20 %) then an 80 kW import limit: B at 100 kW sheds 20, A at 100 kW too.
    assert interval_targets({"intervals": intervals}, baseline) == {"A": {t0: 20.0, t1: 20.0}, "B": {t0: 60.0, t1: 20.0}}
    price_only = [{"start": t0.isoformat(), "end": (t1 + SLOT).isoformat(), "shed_pct": None, "import_limit_kw": None, "price": 0.3}]
    assert interval_targets({"intervals": price_only}, baseline) == {"A": {t0: 0.0, t1: 0.0}, "B": {t0: 0.0, t1: 0.0}}


def test_the_plan_plot_frames_the_event_and_its_load_not_zero_and_hours_after():
    """The UI's plan plot: a 10 % shed on a 200–260 kW load started its kW axis at 0 (the
    shed a hairline) and ran hours past the event. The axis now spans the baseline,
    planned and target load, and the time axis the intervals the plan has."""
    from assets.demand_response import PlanFigures, plan_axes_limits, plan_plot

    baselines = [200.0, 230.0, 260.0, 240.0]
    intervals = [Interval(START + i * SLOT, kw, 0.1 * kw, {"hvac": kw / 2, "ev": 30.0, "lighting": 40.0}) for i, kw in enumerate(baselines)]
    precool = action("PRE", "hvac", 0.2, pct=10, duration=180, prepare_min=60, prepare_pct=50)
    ev = action("EV", "ev", 1.5, pct=100, rebound_min=60, rebound_pct=100)
    plan = plan_facility(intervals, [precool, ev, HVAC], EARLY)
    phases = {step.phase for step in plan.steps}
    assert {"prepare", "rebound"} <= phases

    (x0, x1), (y0, y1) = plan_axes_limits(plan)
    first_step = min(step.start for step in plan.steps)
    last_step = max(step.start for step in plan.steps) + SLOT
    assert x0 == min(first_step, START) and x1 == max(last_step, START + 4 * SLOT)
    assert x0 >= START - timedelta(minutes=60) and x1 <= START + 4 * SLOT + timedelta(minutes=60)
    lowest = min(min(i.expected_kw, i.baseline_kw - i.target_kw) for i in plan.intervals)
    assert 150 < y0 < lowest and 260 < y1 < 280

    png = plan_plot("FAC-X", plan, PlanFigures(plan.target_kwh, plan.shed_kwh, plan.shortfall_kwh))
    assert png.startswith(b"\x89PNG")


def test_axis_limits_pad_the_data_and_respect_a_floor():
    from assets.plots import data_limits

    assert data_limits([200, 260]) == pytest.approx((194.0, 266.0))
    assert data_limits([5, 0, 10], floor=0.0) == pytest.approx((0.0, 11.0))
    assert data_limits([100.0, 100.0]) == pytest.approx((95.0, 105.0))
    assert data_limits([float("nan"), None, 50.0, 70.0]) == pytest.approx((48.0, 72.0))
