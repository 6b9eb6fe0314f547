"""The soak's audit: what the platform holds after the soak, held against what the
simulator's deterministic generator served, what was sent to the webhook receiver and
what the Dagster instance recorded. Nothing here trusts the platform's own counters."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import sqlalchemy as sa
from soak_inject import WebhookLedger

# The closed-hour schedule reloads an hour for 15 minutes after it ends: by then it is whole.
CLOSED_HOUR_RELOADS = timedelta(minutes=20)
# The rule a reading corrupted by the simulator must be quarantined under, by the
# generator's kind of corruption (simulator.readings.BAD_KINDS).
RULE_OF_KIND = {
    "negative_energy": "negative_energy",
    "nan_energy": "not_a_number",
    "power_factor_above_one": "power_factor_out_of_range",
    "zero_voltage": "voltage_out_of_band",
    "future_timestamp": "future_timestamp",
    "duplicate": "duplicate_key",
    "unknown_meter": "unknown_meter",
}
# The marts of an hour just closed are rebuilt at :20 of the next (hourly_marts_settlement);
# by :30 that run is done.
CLOSED_HOUR_SETTLED = timedelta(hours=1, minutes=30)
# Hourly kWh in the marts against the sum of raw readings: equal to float rounding.
KWH_TOLERANCE = 1e-3


def telemetry(engine: sa.Engine, generator, since: datetime, until: datetime) -> dict:
    """Rows expected, loaded and quarantined per hour from the soak's first hour to its
    last. An hour holds what the last load of it fetched, so its expected rows are the
    generator's up to the last reading slot loaded. That slot may not be earlier than
    the load's own time allows (a tail cut off would otherwise hide); an hour closed
    for longer than its reloads must be whole; an hour before the last one loaded that
    nobody loaded has lost all of its rows."""
    interval = generator.interval_s
    meters = len(generator.fleet.meters)
    first_hour = since.replace(minute=0, second=0, microsecond=0)
    with engine.connect() as conn:
        loaded = {
            row.hour: row for row in conn.execute(sa.text(
                "select date_trunc('hour', ts) as hour, count(*) as rows, count(distinct (meter_id, ts)) as keys, "
                "max(ts) as last_ts, min(_loaded_at) as loaded_at from raw.meter_readings "
                "where ts >= :start group by 1"
            ), {"start": first_hour})
        }
        quarantined = dict(conn.execute(sa.text(
            "select hour, count(*) from raw.meter_readings_rejected where hour >= :start group by 1"
        ), {"start": first_hour}).all())
        by_reason = dict(conn.execute(sa.text(
            "select reason, count(*) from raw.meter_readings_rejected where hour >= :start group by 1 order by 1"
        ), {"start": first_hour}).all())
        # A quarantined row whose key also loaded is there twice, unless it is the
        # repeat of a duplicate delivery (its first copy loads).
        both = conn.scalar(sa.text(
            "select count(*) from raw.meter_readings_rejected as r join raw.meter_readings as m "
            "on m.meter_id = r.meter_id and raw.valid_input(r.ts, 'timestamptz') and m.ts = r.ts::timestamptz "
            "where r.hour >= :start and r.reason <> 'duplicate_key'"
        ), {"start": first_hour})
    from simulator.readings import BAD_KINDS

    hours, totals, corrupted = [], defaultdict(int), defaultdict(int)
    last_loaded = max(loaded, default=first_hour)
    hour = first_hour
    while hour <= last_loaded:
        row = loaded.get(hour)
        end = hour + timedelta(hours=1)
        # The hour's last slot: all of it once the closed-hour reloads are over, else
        # at least every slot whose interval ended before its last load began.
        last = end - timedelta(seconds=interval)
        if row is not None and until < end + CLOSED_HOUR_RELOADS:
            last = max(row.last_ts, min(last, _slot(row.loaded_at, interval) - timedelta(seconds=interval)))
        slots = np.arange(int(hour.timestamp()), int(last.timestamp()) + 1, interval, dtype=np.int64)
        kinds = generator.bad_kinds(slots) if slots.size else np.empty(0, dtype=np.int64)
        # Every slot's row of every meter, and the repeat of each duplicated one.
        expected = meters * slots.size + int((kinds == BAD_KINDS.index("duplicate")).sum())
        for kind, count in enumerate(np.bincount(kinds[kinds >= 0], minlength=len(BAD_KINDS))):
            if count:
                corrupted[RULE_OF_KIND[BAD_KINDS[kind]]] += int(count)
        got = (row.rows if row is not None else 0) + quarantined.get(hour, 0)
        entry = {
            "hour": f"{hour:%Y-%m-%d %H:00}",
            "expected": expected,
            "loaded": row.rows if row is not None else 0,
            "quarantined": quarantined.get(hour, 0),
            "lost": max(0, expected - got),
            "extra": max(0, got - expected),
            "duplicate_keys": (row.rows - row.keys) if row is not None else 0,
        }
        hours.append(entry)
        for name in ("expected", "loaded", "quarantined", "lost", "extra", "duplicate_keys"):
            totals[name] += entry[name]
        hour += timedelta(hours=1)
    return {
        "rows_expected": totals["expected"],
        "rows_loaded": totals["loaded"],
        "rows_quarantined": totals["quarantined"],
        "rows_lost": totals["lost"],
        # Rows beyond what was served, repeated keys, and rows both loaded and quarantined.
        "rows_duplicated": totals["extra"] + totals["duplicate_keys"] + both,
        "quarantined_by_reason": by_reason,
        # What the generator corrupted, by the rule each row breaks: a corrupted row that
        # loaded, or a good one quarantined, shows as a difference here.
        "corrupted_by_rule": dict(sorted(corrupted.items())),
        "rows_misjudged": sum(abs(by_reason.get(rule, 0) - corrupted.get(rule, 0)) for rule in {*by_reason, *corrupted}),
        "hours": hours,
    }


def _slot(t: datetime, interval: int) -> datetime:
    return datetime.fromtimestamp(int(t.timestamp()) // interval * interval, UTC)


def marts_match_raw(engine: sa.Engine, since: datetime) -> dict:
    """Per facility and hour since the soak began: marts.fct_load_hourly against the raw
    readings. Built from as many readings as raw now holds, its kWh must equal theirs
    (else `mismatched`); built from fewer, it predates the hour's last reload and waits
    for a rebuild (`behind`, the marts' lag, not an inconsistency).

    The open hour's marts follow each reload (the automation). An hour just closed is
    reloaded until :15 and its marts rebuilt once, at :20 (`hourly_marts_settlement`):
    until that run is done its marts may trail raw by design (`awaiting_settlement`);
    after it, they are behind like any other."""
    start = since.replace(minute=0, second=0, microsecond=0)
    now = datetime.now(UTC)
    with engine.connect() as conn:
        if conn.scalar(sa.text("select to_regclass('marts.fct_load_hourly')")) is None:
            hours = conn.scalar(sa.text(
                "select count(distinct (facility_id, date_trunc('hour', ts))) from raw.meter_readings where ts >= :start"
            ), {"start": start})
            return {"facility_hours_compared": hours, "facility_hours_mismatched": 0, "facility_hours_behind": hours,
                    "facility_hours_awaiting_settlement": 0, "mismatches": [], "behind": ["marts.fct_load_hourly was never built"]}
        rows = conn.execute(sa.text(
            "with raw_hourly as ("
            "  select facility_id, date_trunc('hour', ts) as hour_start, sum(energy_kwh) as kwh, count(*) as readings "
            "  from raw.meter_readings where ts >= :start group by 1, 2) "
            "select r.facility_id, r.hour_start, r.kwh, r.readings, m.energy_kwh, m.reading_count "
            "from raw_hourly as r left join marts.fct_load_hourly as m using (facility_id, hour_start)"
        ), {"start": start}).all()
    mismatched, behind, awaiting = [], [], 0
    for facility, hour, kwh, readings, mart_kwh, mart_readings in rows:
        if mart_kwh is None or mart_readings < readings:
            if hour + timedelta(hours=1) <= now < hour + CLOSED_HOUR_SETTLED:
                awaiting += 1
                continue
            behind.append(f"{facility} {hour:%H:00}: marts from {mart_readings or 0:,} of {readings:,} readings")
        elif mart_readings != readings or abs(mart_kwh - kwh) > KWH_TOLERANCE + 1e-6 * abs(kwh):
            mismatched.append(f"{facility} {hour:%H:00}: raw {kwh:.3f} kWh from {readings:,} readings, marts {mart_kwh:.3f} from {mart_readings:,}")
    return {
        "facility_hours_compared": len(rows),
        "facility_hours_mismatched": len(mismatched),
        "facility_hours_behind": len(behind),
        "facility_hours_awaiting_settlement": awaiting,
        "mismatches": mismatched[:10],
        "behind": behind[:10],
    }


def runs(instance, since: datetime, until: datetime | None = None) -> dict:
    """Every run created since the soak began (and before `until`); each failed one must
    have a later successful run of the same job and partition (a run retry, or the next
    tick), and none may be left queued or running."""
    from dagster import DagsterRunStatus, RunsFilter

    from sensors.run_alerts import run_scope

    records = instance.get_run_records(filters=RunsFilter(created_after=since, created_before=until))
    by_status = defaultdict(int)
    successes = defaultdict(list)
    for record in records:
        by_status[record.dagster_run.status.value] += 1
        if record.dagster_run.status == DagsterRunStatus.SUCCESS:
            successes[(record.dagster_run.job_name, run_scope(record.dagster_run))].append(record.create_timestamp)
    failed, unrecovered = [], []
    for record in records:
        run = record.dagster_run
        if run.status != DagsterRunStatus.FAILURE:
            continue
        scope = (run.job_name, run_scope(run))
        failed.append(f"{scope[0]} {scope[1]}")
        if not any(t > record.create_timestamp for t in successes[scope]):
            unrecovered.append(f"{scope[0]} {scope[1]} (run {run.run_id[:8]}): {_step_errors(instance, run.run_id)}")
    unfinished = [f"{r.dagster_run.job_name} {r.dagster_run.status.value}" for r in records if not r.dagster_run.is_finished]
    return {
        "runs": len(records),
        "runs_by_status": dict(by_status),
        "runs_failed": len(failed),
        "failed_runs": sorted(set(failed)),
        "failed_not_recovered": unrecovered,
        "runs_unfinished": unfinished,
        "retried_runs": sum(1 for r in records if r.dagster_run.tags.get("dagster/parent_run_id")),
    }


def _step_errors(instance, run_id: str) -> str:
    from dagster import DagsterEventType

    errors = []
    for event in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        error = event.dagster_event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        errors.append(f"{event.dagster_event.step_key}: {error.message.strip()[:300] if error else 'no error'}")
    return "; ".join(errors) or "no step failed (the run itself did)"


def demand_response(engine: sa.Engine, instance, ledger: WebhookLedger) -> dict:
    """Event versions stored and planned against the distinct valid ones sent; plans
    materialised more than once; anything stored for a refused request."""
    from dagster import AssetKey

    from orchestration.partitions import dr_partition_key

    event_ids = list(ledger.valid_bodies)
    with engine.connect() as conn:
        stored = conn.execute(sa.text(
            "select event_id, version, planned_at is not null from ops.dr_events where event_id = any(:ids)"
        ), {"ids": event_ids}).all()
        rejected_stored = conn.scalar(sa.text(
            "select count(*) from ops.dr_events where event_id = any(:ids)"
        ), {"ids": list(ledger.hostile_ids)})
    keys = {dr_partition_key(event_id, version) for event_id, version, _ in stored}
    plan_counts = materialisations_by_partition(instance, AssetKey(["marts", "fct_dr_reduction_plan"]), keys)
    return {
        "webhooks_sent": ledger.deliveries,
        "redeliveries": ledger.redeliveries,
        "revisions": ledger.revisions,
        "answers": {str(k): v for k, v in sorted(ledger.answers.items(), key=str)},
        "events_valid": ledger.events_valid,
        "events_accepted": len(stored),
        "plans": sum(1 for *_, planned in stored if planned),
        "plans_materialised": sum(1 for n in plan_counts.values() if n >= 1),
        "double_plans": sum(1 for n in plan_counts.values() if n > 1),
        "hostile_sent": len(ledger.hostile_ids),
        "hostile_answers": dict(ledger.hostile_answers),
        "rejected_webhooks_stored": rejected_stored,
        "unexpected_answers": ledger.unexpected[:10],
        "ack_p50_ms": round(float(np.median(ledger.ack_ms)), 1) if ledger.ack_ms else None,
        "ack_p99_ms": round(float(np.percentile(ledger.ack_ms, 99)), 1) if ledger.ack_ms else None,
    }


def burst_planned_s(engine: sa.Engine, ledger: WebhookLedger, began: datetime) -> float | None:
    """Seconds from the burst's first webhook to the last of its valid versions planned;
    None while any is unplanned."""
    with engine.connect() as conn:
        unplanned, last = conn.execute(sa.text(
            "select count(*) filter (where planned_at is null), max(planned_at) from ops.dr_events where event_id = any(:ids)"
        ), {"ids": list(ledger.valid_bodies)}).one()
    return None if unplanned or last is None else round((last - began).total_seconds(), 1)


def materialisations_by_partition(instance, asset_key, partitions: set[str]) -> dict[str, int]:
    """How often each of `partitions` of the asset was materialised, from the event log."""
    from dagster import AssetRecordsFilter

    counts: dict[str, int] = defaultdict(int)
    cursor = None
    while True:
        result = instance.fetch_materializations(AssetRecordsFilter(asset_key=asset_key), limit=1000, cursor=cursor)
        for record in result.records:
            if record.partition_key in partitions:
                counts[record.partition_key] += 1
        if not result.has_more:
            return counts
        cursor = result.cursor


def alerts(engine: sa.Engine, since: datetime) -> dict:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select kind, status, subject from ops.alerts where raised_at >= :since order by alert_id"
        ), {"since": since}).all()
    by_kind = defaultdict(lambda: defaultdict(int))
    for kind, status, _ in rows:
        by_kind[kind][status] += 1
    return {
        "alerts_raised": len(rows),
        "alerts_by_kind": {kind: dict(statuses) for kind, statuses in by_kind.items()},
        "run_failure_alerts": sorted({subject for kind, _, subject in rows if kind == "run_failure"}),
    }
