{#-
    Local days do not line up with the UTC hours Dagster partitions by: a window
    rebuilds every facility-local day it touches, whole, from the hourly mart, and
    delete+insert on (facility_id, local_date) swaps those days in.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['facility_id', 'local_date'],
        indexes=window_indexes(['facility_id', 'local_date'], 'local_date'),
    )
}}

with facilities as (

    select facility_id, timezone from {{ ref('stg_facilities') }}

),

hours as (

    select
        hourly.*,
        coalesce(facilities.timezone, 'UTC') as timezone,
        (hourly.hour_start at time zone coalesce(facilities.timezone, 'UTC'))::date as local_date

    from {{ ref('fct_load_hourly') }} as hourly
    left join facilities
        on hourly.facility_id = facilities.facility_id

),

{% if is_incremental() and partition_window_is_set() %}
touched_days as (

    select distinct facility_id, local_date
    from hours
    where hour_start >= '{{ var("min_ts") }}'::timestamptz
      and hour_start < '{{ var("max_ts") }}'::timestamptz

),

day_hours as (

    select hours.*
    from hours
    inner join touched_days
        on hours.facility_id = touched_days.facility_id
        and hours.local_date = touched_days.local_date

),
{% else %}
day_hours as (

    select * from hours

),
{% endif %}

daily as (

    select
        facility_id,
        local_date,
        min(timezone) as timezone,
        sum(energy_kwh) as energy_kwh,
        sum(grid_energy_kwh) as grid_energy_kwh,
        sum(onsite_energy_kwh) as onsite_energy_kwh,
        min(min_kw) as min_kw,
        max(max_kw) as max_kw,
        max(peak_15min_kw) as peak_15min_kw,
        sum(reading_count) as reading_count,
        max(expected_meter_count) as expected_meter_count,
        sum(reported_seconds) as reported_seconds,
        sum(avg_kw * covered_seconds) / nullif(sum(covered_seconds), 0) as avg_kw,
        sum(covered_seconds) as covered_seconds,
        count(*) as hours_with_readings

    from day_hours
    group by facility_id, local_date

),

bounded as (

    select
        *,
        (local_date::timestamp at time zone timezone) as day_start,
        ((local_date + 1)::timestamp at time zone timezone) as day_end

    from daily

),

final as (

    select
        facility_id,
        local_date,
        timezone,
        day_start,
        day_end,
        -- 23, 24 or 25: DST days are shorter or longer.
        (extract(epoch from day_end - day_start) / 3600)::integer as day_hours,
        energy_kwh,
        grid_energy_kwh,
        onsite_energy_kwh,
        -- Over the time the readings cover: today, or a day with a gap, is not averaged
        -- as if its missing hours drew nothing (data_completeness says how much is missing).
        avg_kw,
        min_kw,
        max_kw,
        peak_15min_kw,
        reading_count,
        hours_with_readings,
        covered_seconds,
        expected_meter_count,
        least(1.0, reported_seconds::numeric / (expected_meter_count * extract(epoch from day_end - day_start)))::double precision
            as data_completeness

    from bounded

)

select * from final
