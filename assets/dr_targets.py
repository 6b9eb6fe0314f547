"""What a demand-response event asks of each facility in each 15-minute interval, and
what each end use draws there: the planner's inputs, from the inbox row, the baseline
and the submeter history.

Targets:
- `target_reduction_pct`: that share of the facility's baseline in every interval;
- `target_reduction_kw`: the event's kW split across its facilities in proportion to
  their baselines in each interval (a facility twice the size sheds twice the kW);
- OpenADR intervals: a SIMPLE level's shed percentage of the baseline, or an import
  capacity limit (shed whatever the baseline is above it); a PRICE-only interval asks
  for nothing.
"""

from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

from assets.dr_planner import Action, Interval


def load_actions(catalogue: list[dict]) -> dict[str, list[Action]]:
    """Catalogue rows (the `catalogue` statement) as planner actions, per facility."""
    actions: dict[str, list[Action]] = defaultdict(list)
    for row in catalogue:
        actions[row["facility_id"]].append(Action(
            action_id=row["action_id"],
            action=row["action"],
            end_use=row["end_use"],
            max_shed_kw=row["max_shed_kw"],
            max_shed_pct=row["max_shed_pct"],
            max_duration_min=int(row["max_duration_min"]),
            min_notice_min=int(row["min_notice_min"] or 0),
            comfort_cost=float(row["comfort_cost"]),
            priority=int(row["priority"]),
            energy_kwh=row["energy_kwh"],
            prepare_min=int(row["prepare_min"]),
            prepare_pct=float(row["prepare_pct"]),
            rebound_min=int(row["rebound_min"]),
            rebound_pct=float(row["rebound_pct"]),
        ))
    return dict(actions)


def interval_targets(event: dict, baseline: dict[str, dict[datetime, float]]) -> dict[str, dict[datetime, float]]:
    """kW to shed per facility and interval start. `baseline`: kW per facility and
    interval start (the facilities and intervals that have one)."""
    targets: dict[str, dict[datetime, float]] = {f: {} for f in baseline}
    if event.get("target_reduction_pct") is not None:
        pct = float(event["target_reduction_pct"])
        for facility_id, by_slot in baseline.items():
            targets[facility_id] = {t: kw * pct / 100 for t, kw in by_slot.items()}
    elif event.get("target_reduction_kw") is not None:
        total_kw = float(event["target_reduction_kw"])
        fleet: dict[datetime, float] = defaultdict(float)
        for by_slot in baseline.values():
            for t, kw in by_slot.items():
                fleet[t] += kw
        for facility_id, by_slot in baseline.items():
            targets[facility_id] = {t: total_kw * kw / fleet[t] if fleet[t] > 0 else 0.0 for t, kw in by_slot.items()}
    elif event.get("intervals"):
        periods = [
            (datetime.fromisoformat(i["start"]), datetime.fromisoformat(i["end"]), i.get("shed_pct"), i.get("import_limit_kw"))
            for i in event["intervals"]
        ]
        for facility_id, by_slot in baseline.items():
            for t, kw in by_slot.items():
                asked = 0.0
                for start, end, shed_pct, limit_kw in periods:
                    if start <= t < end:
                        if shed_pct is not None:
                            asked = max(asked, kw * float(shed_pct) / 100)
                        if limit_kw is not None:
                            asked = max(asked, kw - float(limit_kw))
                targets[facility_id][t] = max(0.0, asked)
    return targets


def facility_intervals(
    event: dict, baseline_rows: list[tuple], share_rows: list[tuple], timezones: dict[str, str],
) -> dict[str, list[Interval]]:
    """Planner intervals per facility. `baseline_rows`: (facility_id, interval_start,
    baseline_kw, onsite_kw); `share_rows`: (facility_id, weekend, local_time, end_use,
    share) from the `end_use_shares` statement."""
    baseline: dict[str, dict[datetime, float]] = defaultdict(dict)
    onsite: dict[str, dict[datetime, float]] = defaultdict(dict)
    for facility_id, start, baseline_kw, onsite_kw in baseline_rows:
        baseline[facility_id][start] = float(baseline_kw)
        onsite[facility_id][start] = float(onsite_kw or 0.0)
    targets = interval_targets(event, baseline)

    shares: dict[tuple, dict[str, float]] = defaultdict(dict)
    overall: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for facility_id, weekend, local_time, end_use, share in share_rows:
        if share is None:
            continue
        shares[(facility_id, weekend, local_time)][end_use] = float(share)
        overall[facility_id][end_use].append(float(share))

    result: dict[str, list[Interval]] = {}
    for facility_id, by_slot in baseline.items():
        zone = ZoneInfo(timezones.get(facility_id, "UTC"))
        # A quarter-hour the history lacks (a new facility) takes the facility's average mix.
        fallback = {use: sum(v) / len(v) for use, v in overall.get(facility_id, {}).items()}
        intervals = []
        for start in sorted(by_slot):
            local = start.astimezone(zone)
            mix = shares.get((facility_id, local.isoweekday() >= 6, local.time().replace(tzinfo=None))) or fallback
            consumption = by_slot[start] + onsite[facility_id][start]
            intervals.append(Interval(
                start=start,
                baseline_kw=by_slot[start],
                target_kw=targets[facility_id].get(start, 0.0),
                end_use_kw={use: consumption * share for use, share in mix.items()},
            ))
        result[facility_id] = intervals
    return result
