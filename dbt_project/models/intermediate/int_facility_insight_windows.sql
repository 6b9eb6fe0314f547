{#-
    The trailing window the insight marts (fct_grid_impact, fct_recommendations,
    fct_sustainability_score) read per facility: var insight_window_days ending with the
    facility's last hour of load, so a historical backfill reads the same as a live one.
-#}

with load_hours as (

    select facility_id, hour_start from {{ ref('fct_load_hourly') }}

),

windows as (

    select
        facility_id,
        max(hour_start) + interval '1 hour' - make_interval(hours => 24 * {{ var('insight_window_days', 30) }}) as window_start,
        max(hour_start) + interval '1 hour' as window_end

    from load_hours
    group by facility_id

)

select * from windows
