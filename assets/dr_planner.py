"""The load-reduction plan for one facility and one demand-response event: which
curtailment actions run in which 15-minute interval, and what the facility is then
expected to draw.

The greedy rule, interval by interval in time order: the kW to shed is the target plus
any load an earlier action gives back in that interval (a rebound); actions are taken
in order of comfort cost per kW they can shed there (the action's comfort cost over
its available kW, ties by catalogue priority), each as far as needed, until the need is
met or nothing usable is left; what is left is the interval's shortfall. An action is
usable in an interval when

- the utility's notice allows it (the interval starts at least `min_notice_min` after
  the event was received);
- it has time left (`max_duration_min`, summed over the intervals it runs);
- it has load to act on: a percentage of its end use's load in the interval (the
  facility's consumption times the end use's share) or a fixed kW, never more than what
  other actions on the same end use left, and never below zero grid import;
- a battery (`end_use = battery`) has energy left (`energy_kwh`), discharges at most
  `max_shed_kw` and never exports;
- a pre-conditioning action (`prepare_min` > 0: pre-cooling) can only start with the
  event's first interval, when the notice also covers the preparation window; it then
  adds `prepare_pct` % of its first interval's shed during the `prepare_min` before the
  event, and once it stops it cannot start again (the building has coasted).

An action that stops gives back `rebound_pct` % of the energy it shed since it started,
spread evenly over the `rebound_min` after it (deferred charging, recovering setpoints,
recharging the battery, which waits for the event to end). An action out of time rebounds from the interval it stops in;
one the plan no longer needs, from the interval after (the one it stopped in is already
decided). An action that runs again gives back each run; overlapping rebounds add up. Inside the event that raises the next intervals' need, after
the event it is planned load the plan records as the `rebound` phase.

Pure Python, so the asset, tests and benchmarks share it.
"""

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

SLOT = timedelta(minutes=15)
SLOT_HOURS = SLOT.total_seconds() / 3600
EPSILON_KW = 1e-6


@dataclass(frozen=True)
class Action:
    """One row of the curtailment catalogue (dbt seed `curtailment_catalogue`)."""

    action_id: str
    action: str
    end_use: str
    max_shed_kw: float | None
    max_shed_pct: float | None
    max_duration_min: int
    min_notice_min: int
    comfort_cost: float
    priority: int
    energy_kwh: float | None = None
    prepare_min: int = 0
    prepare_pct: float = 0.0
    rebound_min: int = 0
    rebound_pct: float = 0.0

    @property
    def battery(self) -> bool:
        return self.end_use == "battery"

    @property
    def prepares(self) -> bool:
        return self.prepare_min > 0


@dataclass(frozen=True)
class Interval:
    """One event interval of one facility: its grid-import baseline, the reduction
    asked for, and the consumption of each end use (kW)."""

    start: datetime
    baseline_kw: float
    target_kw: float
    end_use_kw: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """What one action does in one interval: `shed_kw` > 0 lowers the load, < 0 adds to
    it (preparation, rebound)."""

    start: datetime
    phase: str  # prepare | event | rebound
    action_id: str
    shed_kw: float


@dataclass
class IntervalOutcome:
    start: datetime
    baseline_kw: float
    target_kw: float
    rebound_kw: float  # load earlier actions give back in this interval
    shed_kw: float  # all actions together
    shortfall_kw: float

    @property
    def expected_kw(self) -> float:
        return max(0.0, self.baseline_kw + self.rebound_kw - self.shed_kw)


@dataclass
class FacilityPlan:
    steps: list[Step]
    intervals: list[IntervalOutcome]
    unusable: dict[str, str]  # action id → why the plan could not use it at all

    @property
    def target_kwh(self) -> float:
        return sum(i.target_kw for i in self.intervals) * SLOT_HOURS

    @property
    def shed_kwh(self) -> float:
        return sum(i.shed_kw - i.rebound_kw for i in self.intervals) * SLOT_HOURS

    @property
    def shortfall_kwh(self) -> float:
        return sum(i.shortfall_kw for i in self.intervals) * SLOT_HOURS

    def outside_event(self) -> dict[datetime, float]:
        """Load the plan adds before and after the event window, kW by interval."""
        first, end = self.intervals[0].start, self.intervals[-1].start + SLOT
        added: dict[datetime, float] = defaultdict(float)
        for step in self.steps:
            if not first <= step.start < end:
                added[step.start] -= step.shed_kw
        return dict(sorted(added.items()))


@dataclass
class _State:
    slots_used: int = 0
    energy_used_kwh: float = 0.0
    run_kwh: float = 0.0  # shed since the action last started
    running: bool = False
    retired: bool = False  # a pre-conditioning action that has stopped


def plan_facility(intervals: list[Interval], actions: list[Action], received_at: datetime) -> FacilityPlan:
    """The plan for consecutive 15-minute `intervals` (the event window, in order)."""
    if not intervals:
        return FacilityPlan([], [], {})
    event_start, event_end = intervals[0].start, intervals[-1].start + SLOT
    state = {a.action_id: _State() for a in actions}
    unusable = {}
    for action in actions:
        reason = _never_usable(action, received_at, event_start)
        if reason:
            unusable[action.action_id] = reason
    usable_actions = [a for a in actions if a.action_id not in unusable]

    steps: list[Step] = []
    outcomes: list[IntervalOutcome] = []
    rebound: dict[datetime, float] = defaultdict(float)

    def stop(action: Action, at: datetime) -> None:
        s = state[action.action_id]
        s.running = False
        s.retired = action.prepares
        if action.rebound_min <= 0 or action.rebound_pct <= 0 or s.run_kwh <= 0:
            return
        if action.battery:
            at = max(at, event_end)  # a battery recharges after the event, not in it
        slots = max(1, math.ceil(action.rebound_min / 15))
        kw = s.run_kwh * action.rebound_pct / 100 / (slots * SLOT_HOURS)
        for k in range(slots):
            t = at + k * SLOT
            rebound[t] += kw
            steps.append(Step(t, "rebound", action.action_id, -kw))
        s.run_kwh = 0.0

    for index, interval in enumerate(intervals):
        t = interval.start
        for action in usable_actions:
            s = state[action.action_id]
            if s.running and s.slots_used * 15 + 15 > action.max_duration_min:
                stop(action, t)  # out of time: its rebound starts now
        given_back = rebound.get(t, 0.0)
        need = max(0.0, interval.target_kw) + given_back if interval.target_kw > 0 else 0.0
        remaining_use = dict(interval.end_use_kw)
        net_kw = interval.baseline_kw + given_back  # what the grid would carry; never driven below 0
        taken: dict[str, float] = {}
        while need > EPSILON_KW:
            best = None
            for action in usable_actions:
                if action.action_id in taken:
                    continue
                kw = _available(action, state[action.action_id], interval, index, remaining_use, net_kw, received_at)
                if kw <= EPSILON_KW:
                    continue
                rank = (action.comfort_cost / kw, action.priority, action.action_id)
                if best is None or rank < best[0]:
                    best = (rank, action, kw)
            if best is None:
                break
            _, action, kw = best
            shed = min(kw, need)
            taken[action.action_id] = shed
            need -= shed
            net_kw -= shed
            if not action.battery:
                remaining_use[action.end_use] = remaining_use.get(action.end_use, 0.0) - shed
        for action in usable_actions:
            s = state[action.action_id]
            shed = taken.get(action.action_id)
            if shed is None:
                if s.running:
                    # No longer needed: it stops with this interval, so its rebound is
                    # planned from the next one (this one is already decided).
                    stop(action, t + SLOT)
                continue
            if not s.running and action.prepares:
                slots = max(1, math.ceil(action.prepare_min / 15))
                for k in range(slots, 0, -1):
                    steps.append(Step(t - k * SLOT, "prepare", action.action_id, -shed * action.prepare_pct / 100))
            s.running = True
            s.slots_used += 1
            s.run_kwh += shed * SLOT_HOURS
            s.energy_used_kwh += shed * SLOT_HOURS
            steps.append(Step(t, "event", action.action_id, shed))
        shed_total = sum(taken.values())
        target = max(0.0, interval.target_kw)
        outcomes.append(IntervalOutcome(t, interval.baseline_kw, target, given_back, shed_total, max(0.0, need) if target > 0 else 0.0))
    for action in usable_actions:
        if state[action.action_id].running:
            stop(action, event_end)
    return FacilityPlan(sorted(_one_step_per_interval(steps), key=lambda s: (s.start, s.action_id)), outcomes, unusable)


def _one_step_per_interval(steps: list[Step]) -> list[Step]:
    """An action that stops, starts again and stops again gives back both runs; where the
    two rebounds overlap, one step carries their sum (the plan's grain is the action's
    phase in an interval)."""
    merged: dict[tuple[datetime, str, str], float] = defaultdict(float)
    for step in steps:
        merged[(step.start, step.phase, step.action_id)] += step.shed_kw
    return [Step(start, phase, action_id, kw) for (start, phase, action_id), kw in merged.items()]


def _never_usable(action: Action, received_at: datetime, event_start: datetime) -> str | None:
    if action.max_duration_min < 15:
        return "its maximum duration is under one 15-minute interval"
    if action.battery and not (action.energy_kwh and action.max_shed_kw):
        return "a battery needs energy_kwh and max_shed_kw"
    if not action.battery and action.max_shed_kw is None and action.max_shed_pct is None:
        return "it gives neither max_shed_kw nor max_shed_pct"
    if action.prepares and received_at + timedelta(minutes=action.min_notice_min + action.prepare_min) > event_start:
        notice = (event_start - received_at).total_seconds() / 60
        return (
            f"it needs {action.min_notice_min} min of notice before {action.prepare_min} min of preparation; "
            f"the event came {notice:.0f} min ahead"
        )
    return None


def _available(
    action: Action, s: _State, interval: Interval, index: int,
    remaining_use: dict[str, float], net_kw: float, received_at: datetime,
) -> float:
    """kW the action can shed in this interval, 0 when it cannot run."""
    if s.retired or s.slots_used * 15 + 15 > action.max_duration_min:
        return 0.0
    if interval.start < received_at + timedelta(minutes=action.min_notice_min):
        return 0.0
    if action.prepares and not s.running and index > 0:
        return 0.0  # pre-conditioning starts with the event or not at all
    if action.battery:
        energy_left = action.energy_kwh - s.energy_used_kwh
        return max(0.0, min(action.max_shed_kw, energy_left / SLOT_HOURS, net_kw))
    use_kw = max(0.0, interval.end_use_kw.get(action.end_use, 0.0))
    limits = [remaining_use.get(action.end_use, 0.0), net_kw]
    if action.max_shed_pct is not None:
        limits.append(use_kw * action.max_shed_pct / 100)
    if action.max_shed_kw is not None:
        limits.append(action.max_shed_kw)
    return max(0.0, min(limits))
