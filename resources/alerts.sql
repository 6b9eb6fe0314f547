-- The alert store (ops.alerts, created in raw_schema.sql). Sections are named
-- statements (resources/sql_files.py).

-- name: raise
-- A new condition opens an alert; the same condition again only refreshes it, unless its
-- level rose: then it escalates and is active again, acknowledged or not.
with existing as (
    select alert_id, level
    from ops.alerts
    where alert_key = %(alert_key)s and status <> 'resolved'
    for update
),
escalated as (
    update ops.alerts as alert
    set level = %(level)s,
        level_name = %(level_name)s,
        message = %(message)s,
        details = %(details)s::jsonb,
        last_seen_at = now(),
        escalated_at = case when %(level)s > existing.level then now() else alert.escalated_at end,
        status = case when %(level)s > existing.level then 'active' else alert.status end
    from existing
    where alert.alert_id = existing.alert_id
    returning alert.alert_id, case when %(level)s > existing.level then 'escalated' else 'unchanged' end as outcome
),
inserted as (
    insert into ops.alerts (alert_key, kind, subject, level, level_name, message, details)
    select %(alert_key)s, %(kind)s, %(subject)s, %(level)s, %(level_name)s, %(message)s, %(details)s::jsonb
    where not exists (select from existing)
    on conflict (alert_key) where status <> 'resolved' do nothing
    returning alert_id, 'raised' as outcome
)
select alert_id, outcome from escalated
union all
select alert_id, outcome from inserted;

-- name: resolve
update ops.alerts
set status = 'resolved', resolved_at = now(), resolution = %(resolution)s
where alert_key = %(alert_key)s and status <> 'resolved'
returning alert_id;

-- name: resolve_cleared
-- Open alerts of a kind whose condition is no longer among those seen now.
update ops.alerts
set status = 'resolved', resolved_at = now(), resolution = %(resolution)s
where kind = %(kind)s and status <> 'resolved' and not (alert_key = any(%(current_keys)s))
returning alert_id, alert_key;

-- name: acknowledge
update ops.alerts
set status = 'acknowledged', acknowledged_at = now(), acknowledged_by = %(by)s
where alert_id = %(alert_id)s and status = 'active'
returning alert_id;

-- name: alert
select alert_id, status from ops.alerts where alert_id = %(alert_id)s;

-- name: list
select alert_id, status, kind, subject, level_name, message, raised_at, last_seen_at, escalated_at,
       acknowledged_at, acknowledged_by, resolved_at, resolution
from ops.alerts
where %(all)s or status <> 'resolved'
order by status = 'resolved', level desc, raised_at desc
limit %(limit)s;
