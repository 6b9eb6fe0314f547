-- The demand-response inbox (ops.dr_events, created in raw_schema.sql). Sections are
-- named statements (resources/sql_files.py).

-- name: known_facilities
select facility_id
from raw.facilities
where active and facility_id = any(%(facility_ids)s);

-- name: insert_event
-- A redelivery of the same event id and version changes nothing.
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

-- name: new_events
-- What the DR sensor has not seen: the inbox after its cursor, in arrival order.
select inbox_id, event_id, version, status
from ops.dr_events
where inbox_id > %(cursor)s
order by inbox_id
limit %(batch)s;
