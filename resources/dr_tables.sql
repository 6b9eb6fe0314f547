-- Demand-response tables the DR assets write (assets/demand_response.py). The comments
-- are the column descriptions BI tools and the Dagster UI show. Sections are named
-- statements (resources/sql_files.py).

-- name: create_tables
create schema if not exists marts;

create table if not exists marts.fct_dr_baseline (
    event_id text not null,
    version text not null,
    facility_id text not null,
    interval_start timestamptz not null,
    interval_end timestamptz not null,
    forecast_kw double precision,
    onsite_kw double precision,
    cbl_kw double precision,
    adjusted_cbl_kw double precision,
    cbl_days integer,
    adjustment_ratio double precision,
    baseline_kw double precision not null,
    baseline_source text not null check (baseline_source in ('forecast', 'cbl')),
    created_at timestamptz not null,
    primary key (event_id, version, facility_id, interval_start)
);
-- Added after the first release of the table: the baseline became grid import.
alter table marts.fct_dr_baseline add column if not exists onsite_kw double precision;
comment on table marts.fct_dr_baseline is
    'What each facility would import from the grid in each 15-minute interval of a demand-response event without it (the load the utility settles on): from the load forecast less the expected on-site supply, or from the 10-in-10 customer baseline (CBL) of grid import with its day-of adjustment; which of them the plan uses.';
comment on column marts.fct_dr_baseline.event_id is 'DR event, as the utility or VTN names it.';
comment on column marts.fct_dr_baseline.version is 'Event version (a revision of the event is a new version with its own baseline).';
comment on column marts.fct_dr_baseline.facility_id is 'Facility the event asks to reduce.';
comment on column marts.fct_dr_baseline.interval_start is 'Start of the 15-minute interval (UTC timestamp).';
comment on column marts.fct_dr_baseline.interval_end is 'End of the 15-minute interval (UTC timestamp, exclusive).';
comment on column marts.fct_dr_baseline.forecast_kw is 'Forecast facility consumption for the hour holding the interval (fct_load_forecast), kW; empty where no forecast covers it.';
comment on column marts.fct_dr_baseline.onsite_kw is 'Expected on-site supply (solar, wind, CHP, battery) in the interval: its average over the CBL days, kW; 0 for a facility without one.';
comment on column marts.fct_dr_baseline.cbl_kw is 'Average grid import in the same wall-clock interval over the 10 most recent eligible days (same day type, not an event day, complete), kW; empty without an eligible day.';
comment on column marts.fct_dr_baseline.adjusted_cbl_kw is 'The CBL times the day-of adjustment ratio, kW.';
comment on column marts.fct_dr_baseline.cbl_days is 'Eligible days the CBL averages, a count (10 when the history allows).';
comment on column marts.fct_dr_baseline.adjustment_ratio is 'Actual load over the CBL in the window from 4 h to 1 h before the event, clamped to 0.8–1.2 (1 when the window had no complete load).';
comment on column marts.fct_dr_baseline.baseline_kw is 'The grid-import baseline the reduction plan works from, kW: the forecast less onsite_kw where there is a forecast, else the adjusted CBL.';
comment on column marts.fct_dr_baseline.baseline_source is 'forecast or cbl: which of them baseline_kw is.';
comment on column marts.fct_dr_baseline.created_at is 'When the run wrote the row (UTC timestamp).';

create table if not exists marts.fct_dr_reduction_plan (
    event_id text not null,
    version text not null,
    facility_id text not null,
    interval_start timestamptz not null,
    interval_end timestamptz not null,
    phase text not null check (phase in ('prepare', 'event', 'rebound')),
    action_id text,
    action text,
    end_use text,
    shed_kw double precision not null,
    baseline_kw double precision,
    target_kw double precision,
    expected_load_kw double precision,
    shortfall_kw double precision,
    created_at timestamptz not null
);
create unique index if not exists fct_dr_reduction_plan_grain
    on marts.fct_dr_reduction_plan (event_id, version, facility_id, interval_start, phase, coalesce(action_id, ''));
comment on table marts.fct_dr_reduction_plan is
    'The load-reduction plan of each demand-response event version: one row per facility, 15-minute interval and action (an event interval where no action runs has one row without an action, so its shortfall shows). Before the event: pre-conditioning load (phase prepare); after an action stops: the load it gives back (phase rebound). The interval columns (baseline, target, expected load, shortfall) repeat on each action''s row of the interval: sum shed_kw, not them.';
comment on column marts.fct_dr_reduction_plan.event_id is 'DR event, as the utility or VTN names it.';
comment on column marts.fct_dr_reduction_plan.version is 'Event version the plan answers.';
comment on column marts.fct_dr_reduction_plan.facility_id is 'Facility the plan acts on.';
comment on column marts.fct_dr_reduction_plan.interval_start is 'Start of the 15-minute interval (UTC timestamp).';
comment on column marts.fct_dr_reduction_plan.interval_end is 'End of the 15-minute interval (UTC timestamp, exclusive).';
comment on column marts.fct_dr_reduction_plan.phase is 'prepare (before the event), event (in the event window) or rebound (load an action gives back after it stops, in or after the window).';
comment on column marts.fct_dr_reduction_plan.action_id is 'Curtailment action (curtailment_catalogue.action_id); empty on the row of an event interval where no action runs.';
comment on column marts.fct_dr_reduction_plan.action is 'What the BMS or operator does, in words.';
comment on column marts.fct_dr_reduction_plan.end_use is 'End use the action acts on (hvac, lighting, plug, process, ev) or battery.';
comment on column marts.fct_dr_reduction_plan.shed_kw is 'kW the action takes off the facility''s grid import in the interval; negative for load it adds (pre-cooling, rebound).';
comment on column marts.fct_dr_reduction_plan.baseline_kw is 'The facility''s grid-import baseline for the interval (fct_dr_baseline.baseline_kw), kW; empty outside the event window.';
comment on column marts.fct_dr_reduction_plan.target_kw is 'Reduction the event asks of the facility in the interval, kW; empty outside the event window.';
comment on column marts.fct_dr_reduction_plan.expected_load_kw is 'Grid import the facility is expected to draw in the interval with the plan, kW (baseline + rebound − shed); empty outside the event window.';
comment on column marts.fct_dr_reduction_plan.shortfall_kw is 'Part of the interval''s target (plus any rebound in it) the catalogue could not cover, kW; 0 when the plan meets it.';
comment on column marts.fct_dr_reduction_plan.created_at is 'When the run wrote the row (UTC timestamp).';

-- name: event
select event_id, version, source, facility_ids, event_start, event_end,
       target_reduction_pct, target_reduction_kw, intervals, status, received_at
from ops.dr_events
where event_id = %(event_id)s and version = %(version)s;

-- name: facilities
select facility_id, timezone
from marts.dim_facility
where facility_id = any(%(facility_ids)s);

-- name: load_history
-- Complete 15-minute intervals only: an interval the meters under-reported would
-- understate the baseline. Grid import is what the utility settles on; the on-site
-- supply turns a consumption forecast into an import one.
select facility_id, interval_start, grid_avg_kw, avg_kw - grid_avg_kw as onsite_kw
from marts.fct_load_15min
where facility_id = any(%(facility_ids)s)
  and interval_start >= %(start)s
  and interval_start < %(end)s
  and data_completeness >= 0.9;

-- name: other_event_starts
-- Earlier DR events of these facilities: their days are not eligible for the CBL.
select facility, event_start
from ops.dr_events, unnest(facility_ids) as facility
where facility = any(%(facility_ids)s)
  and event_id <> %(event_id)s
  and status <> 'cancelled'
  and event_start < %(before)s;

-- name: forecast_exists
-- Before the first forecast run there is no forecast table: the CBL alone.
select to_regclass('marts.fct_load_forecast') is not null;

-- name: forecast
select facility_id, interval_start, yhat_kw
from marts.fct_load_forecast
where facility_id = any(%(facility_ids)s)
  and interval_start >= %(start)s
  and interval_start < %(end)s;

-- name: replace_baseline
delete from marts.fct_dr_baseline where event_id = %(event_id)s and version = %(version)s;
insert into marts.fct_dr_baseline
select * from jsonb_populate_recordset(null::marts.fct_dr_baseline, %(rows)s::jsonb);

-- name: baseline
select facility_id, interval_start, baseline_kw, coalesce(onsite_kw, 0) as onsite_kw
from marts.fct_dr_baseline
where event_id = %(event_id)s and version = %(version)s
order by facility_id, interval_start;

-- name: catalogue
select facility_id, action_id, action, end_use, max_shed_kw, max_shed_pct, max_duration_min,
       min_notice_min, comfort_cost, priority, energy_kwh,
       coalesce(prepare_min, 0) as prepare_min, coalesce(prepare_pct, 0) as prepare_pct,
       coalesce(rebound_min, 0) as rebound_min, coalesce(rebound_pct, 0) as rebound_pct
from staging.curtailment_catalogue
where facility_id = any(%(facility_ids)s)
order by facility_id, priority, action_id;

-- name: end_use_shares
-- Each end use's share of the facility's consumption by day type (weekday or weekend)
-- and local quarter-hour, over the 28 days before the event's day (to its UTC
-- midnight): whole days, so every event of a day reads the same shares, and a burst
-- reads them once a day for all its facilities. Grid submeters carry each end use's
-- grid share pro rata, so their shares are the consumption shares.
with facility as (
    select facility_id, timezone
    from marts.dim_facility
    where facility_id = any(%(facility_ids)s)
),
quarters as (
    select
        load.facility_id,
        load.end_use,
        extract(isodow from load.interval_start at time zone facility.timezone) >= 6 as weekend,
        (load.interval_start at time zone facility.timezone)::time as local_time,
        load.avg_kw
    from facility
    join intermediate.int_meter_load_15min as load on load.facility_id = facility.facility_id
    where load.energy_source = 'grid'
      and load.interval_start >= %(window_end)s - interval '28 days'
      and load.interval_start < %(window_end)s
),
by_use as (
    select facility_id, weekend, local_time, end_use, avg(avg_kw) as avg_kw
    from quarters
    group by facility_id, weekend, local_time, end_use
)
select facility_id, weekend, local_time, end_use,
       avg_kw / nullif(sum(avg_kw) over (partition by facility_id, weekend, local_time), 0) as share
from by_use;

-- name: replace_plan
delete from marts.fct_dr_reduction_plan where event_id = %(event_id)s and version = %(version)s;
insert into marts.fct_dr_reduction_plan
select * from jsonb_populate_recordset(null::marts.fct_dr_reduction_plan, %(rows)s::jsonb);

-- name: plan_by_facility
-- Each facility's plan in the event window, kWh: the one definition of "planned shed"
-- that the inbox's totals (mark_planned) and every summary of the plan add up from. The
-- shed is net of the load actions give back inside the window (rebound rows there are
-- negative), as fct_dr_event_performance measures it; pre-cooling before the window and
-- rebound after it are load outside the event. Interval columns repeat on each action's
-- row: one value per interval.
with intervals as (
    select facility_id, interval_start, sum(shed_kw) as shed_kw, max(target_kw) as target_kw, max(shortfall_kw) as shortfall_kw
    from marts.fct_dr_reduction_plan
    where event_id = %(event_id)s and version = %(version)s and target_kw is not null
    group by facility_id, interval_start
)
select facility_id,
       round((sum(target_kw) * 0.25)::numeric, 3)::double precision as target_kwh,
       round((sum(shed_kw) * 0.25)::numeric, 3)::double precision as planned_shed_kwh,
       round((sum(shortfall_kw) * 0.25)::numeric, 3)::double precision as shortfall_kwh
from intervals
group by facility_id
order by facility_id;

-- name: mark_planned
-- A rerun of the plan (an operator's re-execution) records its figures again, but never
-- takes back an event already dispatched or finished.
update ops.dr_events
set status = 'planned',
    target_kwh = %(target_kwh)s,
    planned_shed_kwh = %(planned_shed_kwh)s,
    shortfall_kwh = %(shortfall_kwh)s,
    status_reason = %(reason)s,
    planned_at = now(),
    updated_at = now()
where event_id = %(event_id)s and version = %(version)s
  and status in ('received', 'planned');

-- name: latest_version
select version, status
from ops.dr_events_current
where event_id = %(event_id)s;

-- name: plan_commands
select facility_id, action_id, end_use, phase, interval_start, interval_end, shed_kw
from marts.fct_dr_reduction_plan
where event_id = %(event_id)s and version = %(version)s and action_id is not null
order by facility_id, interval_start, action_id, phase;

-- name: record_dispatch
insert into ops.dr_dispatches (dispatch_id, event_id, version, facility_id, bms_url, commands, shed_kwh, status, answer)
values (%(dispatch_id)s, %(event_id)s, %(version)s, %(facility_id)s, %(bms_url)s, %(commands)s, %(shed_kwh)s, %(status)s, %(answer)s);

-- name: set_status
-- Moves the event on in its lifecycle from the states given, never back.
update ops.dr_events
set status = %(status)s,
    status_reason = coalesce(%(reason)s, status_reason),
    updated_at = now()
where event_id = %(event_id)s and version = %(version)s
  and status = any(%(from_states)s)
returning status;
