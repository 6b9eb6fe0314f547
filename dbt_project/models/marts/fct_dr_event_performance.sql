{#- What a facility must achieve, as a share of its target, for the event to count as completed. -#}
{%- set pass_ratio = var('dr_pass_ratio', 0.8) -%}
{%- set min_completeness = 0.9 -%}

with events as (

    -- Each event at the version that counts (the inbox's view owns the rule).
    select
        event_id,
        version,
        event_start,
        event_end,
        status

    from {{ ref('stg_dr_events_current') }}

),

-- Only events whose plan went out are measured; a cancelled or never-dispatched one is not.
dispatched_events as (

    select * from events
    where status in ('active', 'completed', 'failed')

),

baseline as (

    select
        baseline.event_id,
        baseline.version,
        baseline.facility_id,
        baseline.interval_start,
        baseline.baseline_kw

    from {{ source('demand_response', 'fct_dr_baseline') }} as baseline
    inner join dispatched_events
        on baseline.event_id = dispatched_events.event_id
        and baseline.version = dispatched_events.version

),

-- The event window's rows carry the interval's target; prepare rows before it do not.
plan_intervals as (

    select
        event_id,
        version,
        facility_id,
        interval_start,
        max(target_kw) as target_kw,
        sum(shed_kw) as planned_shed_kw

    from {{ source('demand_response', 'fct_dr_reduction_plan') }}
    where target_kw is not null
    group by event_id, version, facility_id, interval_start

),

intervals as (

    select
        baseline.*,
        coalesce(plan_intervals.target_kw, 0) as target_kw,
        coalesce(plan_intervals.planned_shed_kw, 0) as planned_shed_kw,
        -- An interval the meters under-reported would flatter the reduction: not measured.
        case
            when load.data_completeness >= {{ min_completeness }} then load.grid_energy_kwh
        end as actual_kwh

    from baseline
    left join plan_intervals
        on baseline.event_id = plan_intervals.event_id
        and baseline.version = plan_intervals.version
        and baseline.facility_id = plan_intervals.facility_id
        and baseline.interval_start = plan_intervals.interval_start
    left join {{ ref('fct_load_15min') }} as load
        on baseline.facility_id = load.facility_id
        and baseline.interval_start = load.interval_start

),

facility_totals as (

    select
        event_id,
        version,
        facility_id,
        count(*) as interval_count,
        count(actual_kwh) as measured_interval_count,
        sum(baseline_kw) * 0.25 as baseline_kwh,
        sum(target_kw) * 0.25 as target_kwh,
        sum(planned_shed_kw) * 0.25 as planned_shed_kwh,
        sum(actual_kwh) as actual_kwh

    from intervals
    group by event_id, version, facility_id

),

measured as (

    select
        facility_totals.*,
        dispatched_events.event_start,
        dispatched_events.event_end,
        extract(epoch from dispatched_events.event_end - dispatched_events.event_start) / 3600.0 as event_hours,
        measured_interval_count = interval_count as is_measured,
        case
            when measured_interval_count = interval_count then baseline_kwh - actual_kwh
        end as reduction_kwh

    from facility_totals
    inner join dispatched_events
        on facility_totals.event_id = dispatched_events.event_id
        and facility_totals.version = dispatched_events.version

)

select
    event_id,
    version,
    facility_id,
    event_start,
    event_end,
    interval_count,
    measured_interval_count,
    round(baseline_kwh::numeric, 3)::double precision as baseline_kwh,
    case when is_measured then round(actual_kwh::numeric, 3)::double precision end as actual_kwh,
    round(reduction_kwh::numeric, 3)::double precision as reduction_kwh,
    round((reduction_kwh / event_hours)::numeric, 3)::double precision as reduction_kw,
    round((100.0 * reduction_kwh / nullif(baseline_kwh, 0))::numeric, 2)::double precision as reduction_pct,
    round(target_kwh::numeric, 3)::double precision as target_kwh,
    round(planned_shed_kwh::numeric, 3)::double precision as planned_shed_kwh,
    round((reduction_kwh / nullif(target_kwh, 0))::numeric, 3)::double precision as performance_ratio,
    case
        when not is_measured then 'pending'
        when target_kwh = 0 or reduction_kwh >= {{ pass_ratio }} * target_kwh then 'completed'
        else 'failed'
    end as status

from measured
