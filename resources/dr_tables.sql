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
    cbl_kw double precision,
    adjusted_cbl_kw double precision,
    cbl_days integer,
    adjustment_ratio double precision,
    baseline_kw double precision not null,
    baseline_source text not null check (baseline_source in ('forecast', 'cbl')),
    created_at timestamptz not null,
    primary key (event_id, version, facility_id, interval_start)
);
comment on table marts.fct_dr_baseline is
    'What each facility would draw in each 15-minute interval of a demand-response event without it: the load forecast and the 10-in-10 customer baseline (CBL) with its day-of adjustment, and which of them the plan uses.';
comment on column marts.fct_dr_baseline.event_id is 'DR event, as the utility or VTN names it.';
comment on column marts.fct_dr_baseline.version is 'Event version (a revision of the event is a new version with its own baseline).';
comment on column marts.fct_dr_baseline.facility_id is 'Facility the event asks to reduce.';
comment on column marts.fct_dr_baseline.interval_start is 'Start of the 15-minute interval (UTC timestamp).';
comment on column marts.fct_dr_baseline.interval_end is 'End of the 15-minute interval (UTC timestamp, exclusive).';
comment on column marts.fct_dr_baseline.forecast_kw is 'Forecast facility load for the hour holding the interval (fct_load_forecast), kW; empty where no forecast covers it.';
comment on column marts.fct_dr_baseline.cbl_kw is 'Average load in the same wall-clock interval over the 10 most recent eligible days (same day type, not an event day, complete), kW; empty without an eligible day.';
comment on column marts.fct_dr_baseline.adjusted_cbl_kw is 'The CBL times the day-of adjustment ratio, kW.';
comment on column marts.fct_dr_baseline.cbl_days is 'Eligible days the CBL averages, a count (10 when the history allows).';
comment on column marts.fct_dr_baseline.adjustment_ratio is 'Actual load over the CBL in the window from 4 h to 1 h before the event, clamped to 0.8–1.2 (1 when the window had no complete load).';
comment on column marts.fct_dr_baseline.baseline_kw is 'The baseline the reduction plan works from, kW: the forecast where there is one, else the adjusted CBL.';
comment on column marts.fct_dr_baseline.baseline_source is 'forecast or cbl: which of them baseline_kw is.';
comment on column marts.fct_dr_baseline.created_at is 'When the run wrote the row (UTC timestamp).';

-- name: event
select event_id, version, source, facility_ids, event_start, event_end,
       target_reduction_pct, target_reduction_kw, intervals, status
from ops.dr_events
where event_id = %(event_id)s and version = %(version)s;

-- name: facilities
select facility_id, timezone
from marts.dim_facility
where facility_id = any(%(facility_ids)s);

-- name: load_history
-- Complete 15-minute intervals only: an interval the meters under-reported would
-- understate the baseline.
select facility_id, interval_start, avg_kw
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
