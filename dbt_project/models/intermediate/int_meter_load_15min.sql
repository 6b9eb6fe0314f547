{{
    config(
        materialized='incremental',
        window_column='interval_start',
        indexes=window_indexes(['meter_id', 'interval_start'], 'interval_start') + [
            {'columns': ['facility_id', 'interval_start']},
        ],
    )
}}

with readings as (

    select * from {{ ref('stg_meter_readings') }}
    {{ partition_window_filter('reading_at') }}

),

meters as (

    select * from {{ ref('stg_meters') }}

),

bucketed as (

    select
        readings.*,
        date_bin('15 minutes', readings.reading_at, timestamptz '2000-01-01 00:00:00+00') as interval_start

    from readings

),

per_meter as (

    select
        meter_id,
        interval_start,
        -- The reading's own source wins: the registry may lag a re-wired meter.
        min(facility_id) as facility_id,
        coalesce(min(energy_source), 'grid') as energy_source,
        sum(energy_kwh) as energy_kwh,
        min(active_power_kw) as min_kw,
        max(active_power_kw) as max_kw,
        avg(active_power_kw) as avg_power_kw,
        sum(reactive_power_kvar * interval_s) / 3600.0 as reactive_kvarh,
        avg(voltage_v) as avg_voltage_v,
        min(voltage_v) as min_voltage_v,
        max(voltage_v) as max_voltage_v,
        avg(power_factor) as avg_power_factor,
        min(power_factor) as min_power_factor,
        count(*) as reading_count,
        sum(interval_s) as reported_seconds

    from bucketed
    group by meter_id, interval_start

),

joined as (

    select
        per_meter.meter_id,
        per_meter.facility_id,
        per_meter.energy_source,
        meters.end_use,
        per_meter.interval_start,
        per_meter.interval_start + interval '15 minutes' as interval_end,
        per_meter.energy_kwh,
        -- Over the time the readings cover, like avg_kw in fct_load_15min.
        per_meter.energy_kwh / nullif(least(900, per_meter.reported_seconds), 0) * 3600 as avg_kw,
        per_meter.min_kw,
        per_meter.max_kw,
        per_meter.avg_power_kw,
        per_meter.reactive_kvarh,
        per_meter.avg_voltage_v,
        per_meter.min_voltage_v,
        per_meter.max_voltage_v,
        per_meter.avg_power_factor,
        per_meter.min_power_factor,
        per_meter.reading_count,
        per_meter.reported_seconds,
        least(1.0, per_meter.reported_seconds / 900.0)::double precision as data_completeness

    from per_meter
    left join meters
        on per_meter.meter_id = meters.meter_id

)

select * from joined
