-- The demand-response inbox (ops.dr_events, created in raw_schema.sql). Sections are
-- named statements (resources/sql_files.py).

-- name: known_facilities
-- With the contract demand a kW target is checked against (null: not in the registry).
select facility_id, contract_demand_kw
from raw.facilities
where active and facility_id = any(%(facility_ids)s);

-- name: insert_event
-- A redelivery of the same event id and version changes nothing. The inbox lock, shared,
-- before the row draws its inbox id and until it commits (see new_events).
select pg_advisory_xact_lock_shared(hashtext('ops.dr_events'));
insert into ops.dr_events (
    event_id, version, source, facility_ids, event_start, event_end,
    target_reduction_pct, target_reduction_kw, intervals, payload, delivery_id, status
)
values (
    %(event_id)s, %(version)s, %(source)s, %(facility_ids)s, %(event_start)s, %(event_end)s,
    %(target_reduction_pct)s, %(target_reduction_kw)s, %(intervals)s::jsonb, %(payload)s::jsonb, %(delivery_id)s,
    %(status)s
)
on conflict (event_id, version) do nothing
returning inbox_id;

-- name: existing_event
select inbox_id
from ops.dr_events
where event_id = %(event_id)s and version = %(version)s;

-- name: missing_plan_inputs
-- The models a plan reads: on a new warehouse the automation builds them within minutes,
-- and until then an event waits in the inbox rather than failing its run.
select relation
from unnest(array[
    'marts.dim_facility', 'marts.fct_load_15min', 'intermediate.int_meter_load_15min', 'staging.curtailment_catalogue'
]) as relation
where to_regclass(relation) is null;

-- name: new_events
-- What the DR sensor has not seen: the inbox after its cursor, in arrival order. An
-- inbox id is drawn when the row is inserted, not when it commits: with receivers
-- storing side by side, id 504 could commit after id 520 was read, and a cursor past
-- 520 never saw it (an event lost in a burst). The inbox lock, exclusive, waits for the
-- inserts in flight and holds new ones off for this read: every id up to the last one
-- read has committed or rolled back.
select pg_advisory_xact_lock(hashtext('ops.dr_events'));
select inbox_id, event_id, version, status
from ops.dr_events
where inbox_id > %(cursor)s
order by inbox_id
limit %(batch)s;

-- name: due_dispatches
-- Planned events whose plan (pre-cooling included) begins within the lead time, and has
-- not ended: only the version that counts (ops.dr_events_current).
select latest.event_id, latest.version
from ops.dr_events_current as latest
left join marts.fct_dr_reduction_plan as plan
    on plan.event_id = latest.event_id and plan.version = latest.version and plan.action_id is not null
where latest.status = 'planned' and latest.event_end > %(now)s
group by latest.event_id, latest.version, latest.event_start
having coalesce(min(plan.interval_start), latest.event_start) <= %(now)s + %(lead)s
order by 1, 2;

-- name: fail_missed
-- An event that ended before its version that counts was planned or dispatched has failed.
update ops.dr_events as event
set status = 'failed',
    status_reason = 'the event ended before its plan was ' || case when latest.status = 'received' then 'made' else 'dispatched' end,
    updated_at = now()
from ops.dr_events_current as latest
where event.event_id = latest.event_id and event.version = latest.version
  and latest.status in ('received', 'planned')
  and latest.event_end <= %(now)s
returning event.event_id, event.version;

-- name: active_events
select event_id, version, event_start, event_end
from ops.dr_events
where status = 'active'
order by inbox_id;

-- name: performance_exists
select to_regclass('marts.fct_dr_event_performance') is not null;

-- name: event_performance
select facility_id, status, reduction_kwh, target_kwh
from marts.fct_dr_event_performance
where event_id = %(event_id)s and version = %(version)s
order by facility_id;

-- name: close_event
update ops.dr_events
set status = %(status)s, status_reason = %(reason)s, updated_at = now()
where event_id = %(event_id)s and version = %(version)s and status = 'active';
