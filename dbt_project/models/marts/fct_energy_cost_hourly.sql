{{
    config(
        materialized='incremental',
        window_column='hour_start',
        indexes=window_indexes(['facility_id', 'hour_start'], 'hour_start'),
    )
}}

with load as (

    select * from {{ ref('fct_load_hourly') }}
    {{ partition_window_filter('hour_start') }}

),

facilities as (

    select facility_id, price_zone from {{ ref('stg_facilities') }}

),

-- Real-time where the zone has one, else day-ahead (int_zone_prices_hourly).
zone_prices as (

    select * from {{ ref('int_zone_prices_hourly') }}

),

joined as (

    select
        load.facility_id,
        load.hour_start,
        load.hour_end,
        facilities.price_zone,
        load.grid_energy_kwh,
        zone_prices.price_per_mwh,
        zone_prices.currency,
        zone_prices.currency_source,
        -- No price loaded for the hour yet: the cost stays empty.
        coalesce(zone_prices.price_source, 'missing') as price_source,
        zone_prices.real_time_intervals

    from load
    left join facilities
        on load.facility_id = facilities.facility_id
    left join zone_prices
        on facilities.price_zone = zone_prices.price_zone
        and load.hour_start = zone_prices.hour_start

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
        currency_source,
        price_source,
        real_time_intervals,
        -- A cost in no known currency is not a cost anyone can add up or compare.
        case when currency is not null then grid_energy_kwh * price_per_mwh / 1000.0 end as energy_cost

    from joined

)

select * from final
