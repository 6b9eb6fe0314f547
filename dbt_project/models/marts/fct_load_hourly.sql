{{
    config(
        materialized='incremental',
        window_column='hour_start',
        indexes=window_indexes(['facility_id', 'hour_start'], 'hour_start'),
    )
}}

with quarters as (

    select * from {{ ref('fct_load_15min') }}
    {{ partition_window_filter('interval_start') }}

),

hourly as (

    select
        facility_id,
        date_trunc('hour', interval_start) as hour_start,
        sum(energy_kwh) as energy_kwh,
        sum(grid_energy_kwh) as grid_energy_kwh,
        sum(onsite_energy_kwh) as onsite_energy_kwh,
        min(min_kw) as min_kw,
        max(max_kw) as max_kw,
        max(avg_kw) as peak_15min_kw,
        max(grid_avg_kw) as grid_peak_15min_kw,
        sum(reading_count) as reading_count,
        max(expected_meter_count) as expected_meter_count,
        sum(reported_seconds) as reported_seconds,
        -- Each quarter's average weighs by the time it covers: an open or short quarter
        -- counts for what it measured, not as a quarter of no load.
        sum(avg_kw * covered_seconds) / nullif(sum(covered_seconds), 0) as avg_kw,
        sum(covered_seconds) as covered_seconds

    from quarters
    group by 1, 2

),

final as (

    select
        facility_id,
        hour_start,
        hour_start + interval '1 hour' as hour_end,
        energy_kwh,
        grid_energy_kwh,
        onsite_energy_kwh,
        avg_kw,
        min_kw,
        max_kw,
        peak_15min_kw,
        grid_peak_15min_kw,
        reading_count,
        expected_meter_count,
        reported_seconds,
        covered_seconds,
        least(1.0, reported_seconds::numeric / (expected_meter_count * 3600))::double precision
            as data_completeness

    from hourly

)

select * from final
