"""Demand response: each event's baseline per facility and 15-minute interval, one
dynamic partition per event version (`<event id>@<version>`, added by the DR sensor)."""

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from orchestration.partitions import dr_event_partitions, dr_event_version
from resources.postgres import PostgresResource
from resources.python_marts import as_json, column_schema
from resources.sql_files import statements

SQL = "dr_tables.sql"
BASELINE = AssetKey(["marts", "fct_dr_baseline"])
INBOX = AssetKey(["ops", "dr_events"])
OWNERS = ["team:energy-data"]
# The inbox is written by the webhook receiver, outside any run: an external asset, so
# the lineage from the utility's call to the plan and its measurement shows in the UI.
dr_events_inbox = AssetSpec(
    key=INBOX,
    description=(
        "The demand-response inbox (ops.dr_events): every event version a utility or OpenADR VTN "
        "sent, stored by the webhook receiver before it answered 202, with its lifecycle "
        "(received → planned → active → completed | failed, or cancelled)."
    ),
    group_name="demand_response",
    kinds={"postgres"},
    owners=["team:energy-data"],
)
# The view over the inbox that owns the rule "the last version the utility sent counts".
dr_events_current = AssetSpec(
    key=AssetKey(["ops", "dr_events_current"]),
    deps=[INBOX],
    description=(
        "Each demand-response event once, at the version that counts: the last the utility sent "
        "(a view over ops.dr_events; the sensors, the planner and the DR performance mart read it)."
    ),
    group_name="demand_response",
    kinds={"postgres"},
    owners=["team:energy-data"],
)

# What every DR asset shares: one partition per event version, its group, kinds, owners.
DR_ASSET = {
    "partitions_def": dr_event_partitions,
    "group_name": "demand_response",
    "kinds": {"python", "postgres"},
    "owners": OWNERS,
}


@asset(
    key=BASELINE,
    deps=[
        INBOX,
        # An event's baseline reads weeks of 15-minute load before it, whichever hours.
        AssetDep(AssetKey(["marts", "fct_load_15min"]), partition_mapping=AllPartitionMapping()),
        AssetKey(["marts", "fct_load_forecast"]),
        AssetKey(["marts", "dim_facility"]),
    ],
    **DR_ASSET,
    check_specs=[
        AssetCheckSpec(
            "every_facility_has_a_baseline",
            asset=BASELINE,
            description="Fails when a facility of the event has neither a forecast nor an eligible day for its customer baseline: no plan can be made for it.",
        )
    ],
)
def dr_baseline(context: AssetExecutionContext, postgres: PostgresResource):
    """What each facility of a demand-response event would import from the grid in each
    15-minute interval of the event without it (`marts.fct_dr_baseline`): grid import is
    what the utility settles on, so a battery or solar panel counts as much as a switch.

    Two baselines side by side: the load forecast (`fct_load_forecast`, the hour's kW of
    consumption) less the expected on-site supply, and the CAISO-style 10-in-10 customer
    baseline (CBL) of grid import: the same wall-clock intervals averaged over the 10 most
    recent eligible days of the same day type (not event days, complete), scaled by the
    day-of adjustment (actual over CBL from 4 h to 1 h before the event, clamped to
    0.8–1.2). The plan works from the forecast where one covers the interval and from the
    adjusted CBL elsewhere; `baseline_source` says which. One partition per event
    version; a rerun replaces its rows.
    """
    # No DDL here: the DR tables come with the warehouse (ensure_warehouse_schema). DDL in
    # each run took table locks that deadlocked against a concurrent run's writes.
    sql = statements(SQL)
    # A burst of events is planned in runs of several event versions (dr_events_sensor).
    events = [_event_baseline(postgres, sql, key) for key in context.partition_keys]
    missing = [problem for event in events for problem in event["missing"]]
    if missing:
        # One log line per run, not per facility: a burst's run logs to the instance's
        # event storage, a write per line.
        context.log.error(f"{len(missing)} facility baseline(s) missing: " + "; ".join(missing[:20]) + (" …" if len(missing) > 20 else ""))
    metadata = {
        "dagster/row_count": sum(event["rows"] for event in events),
        "dagster/column_schema": _schema(postgres, "marts.fct_dr_baseline"),
        "facilities_without_baseline": len(missing),
    }
    if len(events) == 1:
        [event] = events
        metadata.update({
            "event_id": event["event_id"],
            "version": event["version"],
            "event_start": MetadataValue.timestamp(event["start"]),
            "event_end": MetadataValue.timestamp(event["end"]),
            "facilities": event["facilities"],
        })
    else:
        metadata.update({"events": len(events), "facilities": sum(event["facilities"] for event in events)})
    metadata["baselines"] = MetadataValue.md(
        "| event version | facility | intervals from the forecast | CBL days | day-of ratio | note |\n"
        "| --- | --- | ---: | ---: | ---: | --- |\n"
        + "\n".join(f"| {event['key']} {line}" for event in events for line in event["summary"])
    )
    yield MaterializeResult(metadata=metadata)
    yield AssetCheckResult(
        check_name="every_facility_has_a_baseline",
        passed=not missing,
        severity=AssetCheckSeverity.ERROR,
        description="Every facility of the event has a baseline for every interval." if not missing else "; ".join(missing[:10]),
        metadata={"facilities_without_baseline": len(missing)},
    )


def _event_baseline(postgres: PostgresResource, sql: dict[str, str], key: str) -> dict:
    """Write one event version's baseline; what its materialisation reports."""
    import pandas as pd

    from assets.dr_baseline import BaselineRule, customer_baseline

    event_id, version = dr_event_version(key)
    rule = BaselineRule()
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        event = fetch_event(cur, sql, event_id, version)
        facility_ids = list(event["facility_ids"])
        start, end = event["event_start"], event["event_end"]
        cur.execute(sql["facilities"], {"facility_ids": facility_ids})
        timezones = dict(cur.fetchall())
        cur.execute(sql["load_history"], {
            "facility_ids": facility_ids,
            "start": start - timedelta(days=rule.lookback_days + 1),
            "end": start,
        })
        history = pd.DataFrame(cur.fetchall(), columns=["facility_id", "interval_start", "grid_kw", "onsite_kw"])
        cur.execute(sql["other_event_starts"], {"facility_ids": facility_ids, "event_id": event_id, "before": start})
        other_events = cur.fetchall()
        forecast = {}
        cur.execute(sql["forecast_exists"])
        if cur.fetchone()[0]:
            cur.execute(sql["forecast"], {
                "facility_ids": facility_ids, "start": start.replace(minute=0, second=0, microsecond=0), "end": end,
            })
            forecast = {(f, t): kw for f, t, kw in cur.fetchall()}

    created_at = datetime.now(UTC)
    rows, missing, summary = [], [], []
    for facility_id in facility_ids:
        timezone = timezones.get(facility_id)
        if timezone is None:
            missing.append(f"{facility_id}: not in marts.dim_facility")
            continue
        event_days = {
            pd.Timestamp(s).tz_convert(timezone).date() for f, s in other_events if f == facility_id
        }
        load = history[history.facility_id == facility_id].set_index("interval_start")
        cbl = customer_baseline(load.grid_kw, start, end, timezone, event_days, rule)
        # The on-site supply over the same days, unadjusted: the day-of ratio is the
        # import's, and the sun does not scale with the office's occupancy.
        onsite = customer_baseline(load.onsite_kw, start, end, timezone, event_days, rule)
        slots = pd.date_range(pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC"), freq="15min", inclusive="left")
        cbl_by_slot = {} if cbl is None else {row.interval_start: row for row in cbl.intervals.itertuples()}
        onsite_by_slot = {} if onsite is None else dict(zip(onsite.intervals.interval_start, onsite.intervals.cbl_kw, strict=True))
        facility_rows = []
        for slot in slots:
            hour = slot.floor("h").to_pydatetime()
            forecast_kw = forecast.get((facility_id, hour))
            cbl_row = cbl_by_slot.get(slot)
            if forecast_kw is None and cbl_row is None:
                continue
            onsite_kw = max(0.0, float(onsite_by_slot.get(slot, 0.0)))
            facility_rows.append({
                "event_id": event_id,
                "version": version,
                "facility_id": facility_id,
                "interval_start": slot.to_pydatetime(),
                "interval_end": (slot + pd.Timedelta(minutes=15)).to_pydatetime(),
                "forecast_kw": forecast_kw,
                "onsite_kw": round(onsite_kw, 4),
                "cbl_kw": None if cbl_row is None else round(float(cbl_row.cbl_kw), 4),
                "adjusted_cbl_kw": None if cbl_row is None else round(float(cbl_row.adjusted_kw), 4),
                "cbl_days": None if cbl is None else len(cbl.days_used),
                "adjustment_ratio": None if cbl is None else round(cbl.ratio, 4),
                "baseline_kw": round(max(0.0, forecast_kw - onsite_kw) if forecast_kw is not None else float(cbl_row.adjusted_kw), 4),
                "baseline_source": "forecast" if forecast_kw is not None else "cbl",
                "created_at": created_at,
            })
        if len(facility_rows) < len(slots):
            missing.append(
                f"{facility_id}: {len(slots) - len(facility_rows)} of {len(slots)} intervals have neither a forecast "
                f"nor an eligible CBL day in the {rule.lookback_days} days before"
            )
        rows += facility_rows
        summary.append(
            f"{facility_id} | {sum(r['baseline_source'] == 'forecast' for r in facility_rows)} / {len(slots)} | "
            f"{'–' if cbl is None else len(cbl.days_used)} | {'–' if cbl is None else f'{cbl.ratio:.3f}'} | "
            f"{(cbl.note if cbl is not None and cbl.note else '')} |"
        )

    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql["replace_baseline"], {"event_id": event_id, "version": version, "rows": as_json(rows)})
    return {
        "key": key, "event_id": event_id, "version": version, "start": start, "end": end, "rows": len(rows),
        "missing": [f"{key}: {problem}" for problem in missing], "summary": summary, "facilities": len(facility_ids),
    }


def _schema(postgres: PostgresResource, table: str):
    """The table's column schema, once per materialisation (not per event of a batch)."""
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        return column_schema(cur, table)


PLAN = AssetKey(["marts", "fct_dr_reduction_plan"])


@asset(
    key=PLAN,
    deps=[
        BASELINE,
        AssetKey(["staging", "curtailment_catalogue"]),
        # End-use shares come from the 28 days of submeter load before the event's day.
        AssetDep(AssetKey(["intermediate", "int_meter_load_15min"]), partition_mapping=AllPartitionMapping()),
    ],
    **DR_ASSET,
    check_specs=[
        AssetCheckSpec(
            "plan_meets_the_target",
            asset=PLAN,
            description=(
                "Warns when the curtailment catalogue cannot cover the event's target in some interval: "
                "the event is planned with its shortfall recorded, and the operator has to find the rest."
            ),
        )
    ],
)
def dr_reduction_plan(context: AssetExecutionContext, postgres: PostgresResource):
    """Which curtailment actions each facility runs in each 15-minute interval of a
    demand-response event, and what it is then expected to import
    (`marts.fct_dr_reduction_plan`).

    The target per facility and interval: the event's percentage of the baseline; a kW
    target split across the facilities in proportion to their baselines; or an OpenADR
    interval's SIMPLE shed percentage or import capacity limit. The plan takes actions
    from the facility's curtailment catalogue by lowest comfort cost per kW until the
    target is met, within each action's duration, notice, end-use load and battery
    limits, with pre-cooling before the event and the rebound after it
    (assets/dr_planner.py). Where the catalogue falls short the event is still
    `planned`, with its shortfall in ops.dr_events and a warning check.
    """
    sql = statements(SQL)
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        inbox = {key: fetch_event(cur, sql, *dr_event_version(key)) for key in context.partition_keys}
    shares = _end_use_shares(postgres, sql, inbox.values())
    events = [_event_plan(postgres, sql, key, inbox[key], shares) for key in context.partition_keys]
    short = [event for event in events if event["reason"]]
    if short:
        # One warning per run, not per event (each line is a write to the event storage):
        # every event's reason is in ops.dr_events and the check.
        reasons = "; ".join(f"DR event {event['event_id']} version {event['version']}: {event['reason']}" for event in short[:5])
        if len(events) > 1:
            reasons = f"{len(short)} of {len(events)} event versions short of the target (each reason in ops.dr_events): {reasons}"
        context.log.warning(reasons + (" …" if len(short) > 5 else ""))
    totals = {name: round(sum(event[name] for event in events), 2) for name in ("target_kwh", "planned_shed_kwh", "shortfall_kwh")}
    metadata = {"dagster/row_count": sum(event["rows"] for event in events), "dagster/column_schema": _schema(postgres, "marts.fct_dr_reduction_plan")}
    if len(events) == 1:
        [event] = events
        metadata.update({"event_id": event["event_id"], "version": event["version"], **totals})
        metadata.update({"facilities": MetadataValue.md(event["table"]), "plots": MetadataValue.md(_plan_plots(event["plans"], event["figures"]))})
    else:
        # A batch's plots would fill the event log: each event's plan is in the mart.
        metadata.update({"events": len(events), **totals})
        metadata["facilities"] = MetadataValue.md("\n\n".join(f"**{event['key']}**\n\n{event['table']}" for event in events))
    yield MaterializeResult(metadata=metadata)
    reasons = [event["reason"] if len(events) == 1 else f"{event['key']}: {event['reason']}" for event in events if event["reason"]]
    yield AssetCheckResult(
        check_name="plan_meets_the_target",
        passed=not reasons,
        severity=AssetCheckSeverity.WARN,
        description="The plan meets the target in every interval." if not reasons else "; ".join(reasons)[:2000],
        metadata={"target_kwh": totals["target_kwh"], "shortfall_kwh": totals["shortfall_kwh"]},
    )


def _shares_window_end(event_start: datetime) -> datetime:
    """Where an event's end-use shares stop: the UTC midnight of its day (statement end_use_shares)."""
    return event_start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _end_use_shares(postgres: PostgresResource, sql: dict[str, str], events) -> dict[tuple[datetime, str], list[tuple]]:
    """The share rows of every facility of `events`, by (window end, facility): one
    statement per day the events fall on, not one per event (a burst's events share days)."""
    facilities_by_window: dict[datetime, set[str]] = {}
    for event in events:
        facilities_by_window.setdefault(_shares_window_end(event["event_start"]), set()).update(event["facility_ids"])
    shares: dict[tuple[datetime, str], list[tuple]] = {}
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        for window_end, facility_ids in facilities_by_window.items():
            cur.execute(sql["end_use_shares"], {"facility_ids": sorted(facility_ids), "window_end": window_end})
            for row in cur.fetchall():
                shares.setdefault((window_end, row[0]), []).append(row)
    return shares


def _event_plan(postgres: PostgresResource, sql: dict[str, str], key: str, event: dict, shares: dict) -> dict:
    """Plan one event version (its inbox row `event`, the batch's end-use `shares`) and
    mark it planned in the inbox; what its materialisation reports."""
    from assets.dr_planner import plan_facility
    from assets.dr_targets import facility_intervals, load_actions

    event_id, version = dr_event_version(key)
    facility_ids = list(event["facility_ids"])
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql["baseline"], {"event_id": event_id, "version": version})
        baseline = cur.fetchall()
        cur.execute(sql["catalogue"], {"facility_ids": facility_ids})
        catalogue = _records(cur)
        cur.execute(sql["facilities"], {"facility_ids": facility_ids})
        timezones = dict(cur.fetchall())

    window_end = _shares_window_end(event["event_start"])
    share_rows = [row for facility_id in facility_ids for row in shares.get((window_end, facility_id), [])]
    intervals = facility_intervals(event, baseline, share_rows, timezones)
    actions = load_actions(catalogue)
    created_at = datetime.now(UTC)
    rows, plans = [], {}
    for facility_id in facility_ids:
        plan = plan_facility(intervals.get(facility_id, []), actions.get(facility_id, []), event["received_at"])
        plans[facility_id] = plan
        rows += _plan_rows(event_id, version, facility_id, plan, {a.action_id: a for a in actions.get(facility_id, [])}, created_at)

    unplanned = [f for f in facility_ids if not intervals.get(f)]
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql["replace_plan"], {"event_id": event_id, "version": version, "rows": as_json(rows)})
        # The figures come from the rows just written, by the statement every summary of
        # the plan uses: the inbox's totals are the sum of the facilities' rows.
        cur.execute(sql["plan_by_facility"], {"event_id": event_id, "version": version})
        figures = {facility_id: PlanFigures(*values) for facility_id, *values in cur.fetchall()}
        figures = {f: figures.get(f, PlanFigures(0.0, 0.0, 0.0)) for f in facility_ids}
        target_kwh, shed_kwh, shortfall_kwh = (
            round(sum(getattr(f, name) for f in figures.values()), 3) for name in ("target_kwh", "planned_shed_kwh", "shortfall_kwh")
        )
        reason = _plan_reason(figures, target_kwh, shed_kwh, shortfall_kwh, unplanned, intervals, actions, plans)
        cur.execute(sql["mark_planned"], {
            "event_id": event_id, "version": version, "target_kwh": target_kwh,
            "planned_shed_kwh": shed_kwh, "shortfall_kwh": shortfall_kwh, "reason": reason,
        })
    return {
        "key": key, "event_id": event_id, "version": version, "rows": len(rows), "reason": reason,
        "target_kwh": target_kwh, "planned_shed_kwh": shed_kwh, "shortfall_kwh": shortfall_kwh,
        "table": _plan_table(plans, figures, actions), "plans": plans, "figures": figures,
    }


def fetch_event(cur, sql, event_id: str, version: str) -> dict:
    """The inbox row of one event version, as a dict; Failure when it is not there."""
    cur.execute(sql["event"], {"event_id": event_id, "version": version})
    row = cur.fetchone()
    if row is None:
        raise Failure(f"no DR event {event_id} version {version} in ops.dr_events")
    return dict(zip([d.name for d in cur.description], row, strict=True))


def _records(cur) -> list[dict]:
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _plan_rows(event_id, version, facility_id, plan, actions, created_at) -> list[dict]:
    by_interval = {i.start: i for i in plan.intervals}
    rows = []
    acted = set()
    for step in plan.steps:
        interval = by_interval.get(step.start)
        action = actions[step.action_id]
        acted.add(step.start)
        rows.append(_plan_row(event_id, version, facility_id, step.start, step.phase, action, step.shed_kw, interval, created_at))
    for interval in plan.intervals:
        if interval.start not in acted:
            rows.append(_plan_row(event_id, version, facility_id, interval.start, "event", None, 0.0, interval, created_at))
    return rows


def _plan_row(event_id, version, facility_id, start, phase, action, shed_kw, interval, created_at) -> dict:
    return {
        "event_id": event_id,
        "version": version,
        "facility_id": facility_id,
        "interval_start": start,
        "interval_end": start + timedelta(minutes=15),
        "phase": phase,
        "action_id": action.action_id if action else None,
        "action": action.action if action else None,
        "end_use": action.end_use if action else None,
        "shed_kw": round(shed_kw, 4),
        "baseline_kw": None if interval is None else round(interval.baseline_kw, 4),
        "target_kw": None if interval is None else round(interval.target_kw, 4),
        "expected_load_kw": None if interval is None else round(interval.expected_kw, 4),
        "shortfall_kw": None if interval is None else round(interval.shortfall_kw, 4),
        "created_at": created_at,
    }


class PlanFigures(NamedTuple):
    """One facility's plan in the event window, kWh (statement plan_by_facility)."""

    target_kwh: float
    planned_shed_kwh: float
    shortfall_kwh: float


# A shortfall under this is rounding (the rows carry kW to 4 decimals), not a finding.
SHORTFALL_KWH = 0.05


def _plan_reason(figures, target_kwh, shed_kwh, shortfall_kwh, unplanned, intervals, actions, plans) -> str | None:
    """Why the plan falls short, naming only the facilities that do, each with its
    shortfall and what kept its catalogue from covering it."""
    if shortfall_kwh <= SHORTFALL_KWH:
        if unplanned:
            return f"no baseline for {', '.join(unplanned)} (no forecast and no eligible CBL day): nothing planned there"
        return None
    short = [f for f, figure in figures.items() if figure.shortfall_kwh > SHORTFALL_KWH]
    parts = []
    for facility_id in short:
        why = _plan_problems(facility_id, intervals, actions, plans) or ["its actions' notice, duration and load limits"]
        parts.append(f"{facility_id} {figures[facility_id].shortfall_kwh:.1f} kWh ({'; '.join(why)})")
    reason = f"the plan sheds {shed_kwh:.1f} of the {target_kwh:.1f} kWh asked: {shortfall_kwh:.1f} kWh short, at {', '.join(parts)}"
    if unplanned:
        reason += f"; no baseline for {', '.join(unplanned)}: nothing planned there"
    return reason


def _plan_problems(facility_id, intervals, actions, plans) -> list[str]:
    if not intervals.get(facility_id):
        return [f"{facility_id} has no baseline"]
    if not actions.get(facility_id):
        return [f"{facility_id} has no actions in the curtailment catalogue"]
    return [f"{action_id} unusable: {why}" for action_id, why in plans[facility_id].unusable.items()]


def _plan_table(plans, figures, actions) -> str:
    lines = [
        "| facility | target kWh | planned shed kWh | shortfall kWh | actions used | unusable actions |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for facility_id, plan in plans.items():
        used = sorted({s.action_id for s in plan.steps if s.phase == "event"})
        unusable = "; ".join(f"{a}: {why}" for a, why in plan.unusable.items())
        if not actions.get(facility_id):
            unusable = "no actions in the curtailment catalogue"
        figure = figures[facility_id]
        lines.append(
            f"| {facility_id} | {figure.target_kwh:.1f} | {figure.planned_shed_kwh:.1f} | {figure.shortfall_kwh:.1f} | "
            f"{', '.join(used) or '–'} | {unusable or '–'} |"
        )
    return "\n".join(lines)


MAX_PLOTS = 20  # each a ~10 KB PNG in the event log; the table lists every facility


def plan_axes_limits(plan) -> tuple[tuple[datetime, datetime], tuple[float, float]]:
    """The DR plan plot's x-range, the event window and the preparation and rebound
    intervals the plan has, no more; and its kW range, around the baseline, planned and
    target load in the window (not from 0, where a 10 % shed is a hairline)."""
    from assets.dr_planner import SLOT
    from assets.plots import data_limits

    starts = [i.start for i in plan.intervals] + [s.start for s in plan.steps]
    x = (min(starts), max(starts) + SLOT)
    kw = [v for i in plan.intervals for v in (i.baseline_kw, i.expected_kw, i.baseline_kw - i.target_kw)]
    return x, data_limits(kw, floor=0.0)


def plan_plot(facility_id: str, plan, figures: PlanFigures) -> bytes:
    """PNG: baseline, planned and target load through the event window (shaded), and
    below it the load pre-cooling adds before the event and rebound adds after it."""
    import matplotlib.dates as mdates

    from assets.dr_planner import SLOT
    from assets.plots import figure, legend_outside, palette_png

    (x0, x1), (y0, y1) = plan_axes_limits(plan)
    event_start, event_end = plan.intervals[0].start, plan.intervals[-1].start + SLOT
    outside = {
        phase: [s for s in plan.steps if s.phase == phase and not event_start <= s.start < event_end]
        for phase in ("prepare", "rebound")
    }
    fig = figure(9, 4.2 if any(outside.values()) else 3.2, dpi=80)
    if any(outside.values()):
        axes, added = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08})
    else:
        axes, added = fig.subplots(), None
    starts = [i.start for i in plan.intervals] + [event_end]
    axes.axvspan(event_start, event_end, color="#eeeeee", linewidth=0, label="event")
    # baseline=None: steps only, no edges drawn down to 0 kW at the window's ends.
    axes.stairs([i.baseline_kw for i in plan.intervals], starts, baseline=None, color="black", linewidth=1.4, label="baseline")
    axes.stairs([i.expected_kw for i in plan.intervals], starts, baseline=None, color="#08519c", linewidth=1.8, label="planned load")
    # Over the planned load, which it equals where the plan meets the target.
    axes.stairs([i.baseline_kw - i.target_kw for i in plan.intervals], starts, baseline=None,
                color="#fd8d3c", linestyle="--", linewidth=1.4, label="target load")
    axes.set_xlim(x0, x1)
    axes.set_ylim(y0, y1)
    axes.set_ylabel("kW", fontsize=9)
    axes.set_title(
        f"{facility_id}: plan sheds {figures.planned_shed_kwh:.1f} of {figures.target_kwh:.1f} kWh"
        + (f", {figures.shortfall_kwh:.1f} kWh short" if figures.shortfall_kwh > SHORTFALL_KWH else ""),
        fontsize=10, loc="left",
    )
    legend_outside(axes)
    bottom = axes
    if added is not None:
        for phase, color, label in (("prepare", "#9ecae1", "pre-cooling"), ("rebound", "#fdae6b", "rebound")):
            by_start: dict[datetime, float] = {}
            for step in outside[phase]:
                by_start[step.start] = by_start.get(step.start, 0.0) - step.shed_kw
            if by_start:
                added.bar(list(by_start), list(by_start.values()), width=SLOT, align="edge", color=color, label=label)
        added.axvspan(event_start, event_end, color="#eeeeee", linewidth=0)
        added.set_ylabel("added kW", fontsize=9)
        legend_outside(added)
        bottom = added
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    bottom.set_xlabel("UTC", fontsize=9)
    for ax in fig.axes:
        ax.tick_params(labelsize=8)
    # Fixed margins, the right one for the legend: tight_layout would draw the figure twice.
    fig.subplots_adjust(left=0.07, right=0.83, top=0.9, bottom=0.14 if added is None else 0.11)
    return palette_png(fig)


def _plan_plots(plans, figures) -> str:
    from assets.plots import markdown_image

    parts = []
    for facility_id, plan in list(plans.items())[:MAX_PLOTS]:
        if plan.intervals:
            parts.append(markdown_image(facility_id, plan_plot(facility_id, plan, figures[facility_id])))
    if len(plans) > MAX_PLOTS:
        parts.append(f"The first {MAX_PLOTS} of {len(plans)} facilities; every plan is in `marts.fct_dr_reduction_plan`.")
    return "\n".join(parts) or "No facility of the event has a baseline to plan from."
