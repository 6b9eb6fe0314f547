{{
    config(
        materialized='incremental',
        window_column='hour_start',
        indexes=window_indexes(['facility_id', 'hour_start', 'energy_source'], 'hour_start'),
    )
}}

with meter_quarters as (

    select * from {{ ref('int_meter_load_15min') }}
    {{ partition_window_filter('interval_start') }}

),

hourly as (

    select
        facility_id,
        date_trunc('hour', interval_start) as hour_start,
        energy_source,
        sum(energy_kwh) as energy_kwh,
        sum(reading_count) as reading_count,
        count(distinct meter_id) as meter_count

    from meter_quarters
    group by 1, 2, 3

)

select * from hourly
