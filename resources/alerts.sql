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

-- name: enqueue
-- One notification per alert event and channel; an event already queued adds nothing.
insert into ops.notification_queue (alert_id, alert_event, channel)
select %(alert_id)s, %(alert_event)s, channel
from unnest(%(channels)s::text[]) as channel
on conflict (alert_id, alert_event, channel) do nothing;

-- name: due_notifications
-- Due deliveries, each taken by one sensor evaluation at a time.
select queue.delivery_id, queue.alert_id, queue.alert_event, queue.channel, queue.attempts,
       alert.kind, alert.subject, alert.level, alert.level_name, alert.status, alert.message, alert.raised_at
from ops.notification_queue as queue
join ops.alerts as alert on alert.alert_id = queue.alert_id
where queue.status = 'pending' and queue.next_attempt_at <= now()
order by queue.next_attempt_at
limit %(limit)s
for update of queue skip locked;

-- name: record_attempt
insert into ops.notifications (delivery_id, alert_id, alert_event, channel, attempt, outcome, detail)
values (%(delivery_id)s, %(alert_id)s, %(alert_event)s, %(channel)s, %(attempt)s, %(outcome)s, %(detail)s);

-- name: settle_delivery
update ops.notification_queue
set status = %(status)s, attempts = %(attempt)s, next_attempt_at = now() + %(backoff)s
where delivery_id = %(delivery_id)s;

-- name: conditions_exist
-- Before the first marts build there is no view: nothing to raise yet.
select to_regclass('intermediate.int_alert_conditions') is not null;

-- name: conditions
select alert_key, kind, subject, level, level_name, message
from intermediate.int_alert_conditions;
