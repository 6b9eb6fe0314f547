{{
    config(
        materialized='incremental',
        window_column='interval_start',
        indexes=window_indexes(['facility_id', 'interval_start'], 'interval_start'),
    )
}}

with readings as (

    select * from {{ ref('stg_meter_readings') }}
    {{ partition_window_filter('reading_at') }}

),

registered_meters as (

    select
        facility_id,
        count(*) as expected_meter_count

    from {{ ref('stg_meters') }}
    where is_active
    group by facility_id

),

bucketed as (

    select
        *,
        date_bin('15 minutes', reading_at, timestamptz '2000-01-01 00:00:00+00') as interval_start,
        coalesce(energy_source, 'grid') = 'grid' as is_grid

    from readings

),

-- Facility demand at one instant is the sum of its meters at that reading time.
instants as (

    select
        facility_id,
        interval_start,
        reading_at,
        sum(active_power_kw) as facility_kw

    from bucketed
    group by facility_id, interval_start, reading_at

),

demand as (

    select
        facility_id,
        interval_start,
        min(facility_kw) as min_kw,
        max(facility_kw) as max_kw

    from instants
    group by facility_id, interval_start

),

-- Each meter's energy and the time its readings cover: a meter's average demand is
-- over the time it reported, so an interval still in progress (or a reading short)
-- is not averaged as if the missing time drew nothing.
meter_energy as (

    select
        facility_id,
        interval_start,
        meter_id,
        sum(energy_kwh) as energy_kwh,
        coalesce(sum(energy_kwh) filter (where is_grid), 0) as grid_energy_kwh,
        count(*) as reading_count,
        sum(interval_s) as reported_seconds,
        least(900, sum(interval_s)) as covered_seconds

    from bucketed
    group by facility_id, interval_start, meter_id

),

energy as (

    select
        facility_id,
        interval_start,
        sum(energy_kwh) as energy_kwh,
        sum(grid_energy_kwh) as grid_energy_kwh,
        sum(energy_kwh - grid_energy_kwh) as onsite_energy_kwh,
        sum(energy_kwh / nullif(covered_seconds, 0)) * 3600 as avg_kw,
        sum(grid_energy_kwh / nullif(covered_seconds, 0)) * 3600 as grid_avg_kw,
        sum(reading_count) as reading_count,
        count(*) as meter_count,
        sum(reported_seconds) as reported_seconds,
        max(covered_seconds) as covered_seconds

    from meter_energy
    group by facility_id, interval_start

),

joined as (

    select
        energy.facility_id,
        energy.interval_start,
        energy.interval_start + interval '15 minutes' as interval_end,
        energy.energy_kwh,
        energy.grid_energy_kwh,
        energy.onsite_energy_kwh,
        energy.avg_kw,
        energy.grid_avg_kw,
        demand.min_kw,
        demand.max_kw,
        energy.reading_count,
        energy.meter_count,
        -- A facility missing from the registry is judged by the meters that reported.
        greatest(coalesce(registered_meters.expected_meter_count, 0), energy.meter_count) as expected_meter_count,
        energy.reported_seconds,
        energy.covered_seconds

    from energy
    inner join demand
        on energy.facility_id = demand.facility_id
        and energy.interval_start = demand.interval_start
    left join registered_meters
        on energy.facility_id = registered_meters.facility_id

),

final as (

    select
        *,
        least(1.0, reported_seconds::numeric / (expected_meter_count * 900))::double precision
            as data_completeness

    from joined

)

select * from final
