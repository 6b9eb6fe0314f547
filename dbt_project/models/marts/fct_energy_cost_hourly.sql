{{
    config(
        materialized='incremental',
        incremental_strategy='replace_window',
        window_column='hour_start',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['facility_id', 'hour_start'], 'unique': True},
            {'columns': ['hour_start']},
        ],
    )
}}

with load as (

    select * from {{ ref('fct_load_hourly') }}
    {{ partition_window_filter('hour_start') }}

),

facilities as (

    select facility_id, price_zone from {{ ref('stg_facilities') }}

),

hourly_prices as (

    select * from {{ ref('stg_grid_prices') }}
    where resolution = '1h'

),

real_time as (

    select * from hourly_prices where price_source <> 'day_ahead'

),

day_ahead as (

    select * from hourly_prices where price_source = 'day_ahead'

),

joined as (

    select
        load.facility_id,
        load.hour_start,
        load.hour_end,
        facilities.price_zone,
        load.grid_energy_kwh,
        -- The settled real-time price where the zone has one; day-ahead otherwise.
        coalesce(real_time.price_per_mwh, day_ahead.price_per_mwh) as price_per_mwh,
        coalesce(real_time.currency, day_ahead.currency) as currency,
        case
            when real_time.price_per_mwh is not null then 'real_time'
            when day_ahead.price_per_mwh is not null then 'day_ahead'
            else 'missing'
        end as price_source,
        real_time.averaged_intervals as real_time_intervals

    from load
    left join facilities
        on load.facility_id = facilities.facility_id
    left join real_time
        on facilities.price_zone = real_time.price_zone
        and load.hour_start = real_time.interval_start
    left join day_ahead
        on facilities.price_zone = day_ahead.price_zone
        and load.hour_start = day_ahead.interval_start

),

final as (

    select
        facility_id,
        hour_start,
        hour_end,
        price_zone,
        grid_energy_kwh,
        price_per_mwh,
        price_per_mwh / 1000.0 as price_per_kwh,
        currency,
        price_source,
        real_time_intervals,
        grid_energy_kwh * price_per_mwh / 1000.0 as energy_cost

    from joined

)

select * from final
