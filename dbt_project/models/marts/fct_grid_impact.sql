{#-
    How each facility's grid draw lines up with its zone's prices and carbon intensity
    over a trailing window that ends with the facility's data, so a historical backfill
    reads the same as a live one.
-#}

{%- set min_hours = var('grid_impact_min_hours', 24) %}

with windows as (

    select * from {{ ref('int_facility_insight_windows') }}

),

load_hours as (

    select facility_id, hour_start, grid_energy_kwh from {{ ref('fct_load_hourly') }}

),

facilities as (

    select facility_id, price_zone, grid_zone from {{ ref('stg_facilities') }}

),

costs as (

    select facility_id, hour_start, price_per_mwh, currency from {{ ref('fct_energy_cost_hourly') }}

),

-- The currency the facility's window is priced in, that of its latest priced hour: prices
-- in another currency (or none) never enter its averages.
facility_currencies as (

    select distinct on (costs.facility_id)
        costs.facility_id,
        costs.currency

    from costs
    inner join windows
        on costs.facility_id = windows.facility_id
        and costs.hour_start >= windows.window_start
        and costs.hour_start < windows.window_end
    where costs.currency is not null
    order by costs.facility_id, costs.hour_start desc

),

-- The zone's hourly price as the cost mart bills it: real-time where the zone has one, else day-ahead.
zone_prices as (

    select price_zone, hour_start, price_per_mwh, currency from {{ ref('int_zone_prices_hourly') }}

),

zone_intensity as (

    select grid_zone, hour_start, carbon_intensity_kg_per_kwh from {{ ref('int_grid_intensity_hourly') }}

),

-- The zone's hours over each facility's window: what "the zone's top decile" is measured on.
zone_price_stats as (

    select
        windows.facility_id,
        percentile_cont(0.9) within group (order by zone_prices.price_per_mwh) as price_p90_per_mwh,
        avg(zone_prices.price_per_mwh) as avg_zone_price_per_mwh

    from windows
    inner join facilities
        on windows.facility_id = facilities.facility_id
    inner join facility_currencies
        on windows.facility_id = facility_currencies.facility_id
    inner join zone_prices
        on facilities.price_zone = zone_prices.price_zone
        and zone_prices.currency = facility_currencies.currency
        and zone_prices.hour_start >= windows.window_start
        and zone_prices.hour_start < windows.window_end
    group by windows.facility_id

),

zone_intensity_stats as (

    select
        windows.facility_id,
        percentile_cont(0.9) within group (order by zone_intensity.carbon_intensity_kg_per_kwh)
            as intensity_p90_kg_per_kwh,
        avg(zone_intensity.carbon_intensity_kg_per_kwh) as avg_zone_intensity_kg_per_kwh

    from windows
    inner join facilities
        on windows.facility_id = facilities.facility_id
    inner join zone_intensity
        on facilities.grid_zone = zone_intensity.grid_zone
        and zone_intensity.hour_start >= windows.window_start
        and zone_intensity.hour_start < windows.window_end
    group by windows.facility_id

),

facility_hours as (

    select
        load_hours.facility_id,
        load_hours.hour_start,
        load_hours.grid_energy_kwh,
        case when costs.currency = facility_currencies.currency then costs.price_per_mwh end as price_per_mwh,
        facility_currencies.currency,
        zone_intensity.carbon_intensity_kg_per_kwh as intensity_kg_per_kwh,
        costs.currency = facility_currencies.currency
            and costs.price_per_mwh >= zone_price_stats.price_p90_per_mwh as is_top_price_hour,
        zone_intensity.carbon_intensity_kg_per_kwh >= zone_intensity_stats.intensity_p90_kg_per_kwh
            as is_top_intensity_hour

    from load_hours
    inner join windows
        on load_hours.facility_id = windows.facility_id
        and load_hours.hour_start >= windows.window_start
        and load_hours.hour_start < windows.window_end
    left join facilities
        on load_hours.facility_id = facilities.facility_id
    left join costs
        on load_hours.facility_id = costs.facility_id
        and load_hours.hour_start = costs.hour_start
    left join facility_currencies
        on load_hours.facility_id = facility_currencies.facility_id
    left join zone_intensity
        on facilities.grid_zone = zone_intensity.grid_zone
        and load_hours.hour_start = zone_intensity.hour_start
    left join zone_price_stats
        on load_hours.facility_id = zone_price_stats.facility_id
    left join zone_intensity_stats
        on load_hours.facility_id = zone_intensity_stats.facility_id

),

aggregated as (

    select
        facility_id,
        count(*) as hours,
        sum(grid_energy_kwh) as grid_energy_kwh,
        min(currency) as currency,

        count(*) filter (where price_per_mwh is not null) as priced_hours,
        corr(grid_energy_kwh, price_per_mwh) as corr_load_price,
        sum(grid_energy_kwh) filter (where price_per_mwh is not null) as priced_kwh,
        sum(grid_energy_kwh) filter (where is_top_price_hour) as top_price_kwh,
        sum(grid_energy_kwh * price_per_mwh) as kwh_price_product,

        count(*) filter (where intensity_kg_per_kwh is not null) as intensity_hours,
        corr(grid_energy_kwh, intensity_kg_per_kwh) as corr_load_carbon,
        sum(grid_energy_kwh) filter (where intensity_kg_per_kwh is not null) as rated_kwh,
        sum(grid_energy_kwh) filter (where is_top_intensity_hour) as top_intensity_kwh,
        sum(grid_energy_kwh * intensity_kg_per_kwh) as kwh_intensity_product

    from facility_hours
    group by facility_id

),

final as (

    select
        windows.facility_id,
        windows.window_start,
        windows.window_end,
        aggregated.hours,
        aggregated.grid_energy_kwh,
        aggregated.priced_hours,
        aggregated.intensity_hours,
        -- corr() is already null without variance; too few hours make it noise.
        case when aggregated.priced_hours >= {{ min_hours }} then aggregated.corr_load_price end
            as corr_load_price,
        case when aggregated.intensity_hours >= {{ min_hours }} then aggregated.corr_load_carbon end
            as corr_load_carbon,
        zone_price_stats.price_p90_per_mwh,
        coalesce(aggregated.top_price_kwh, 0) / nullif(aggregated.priced_kwh, 0)
            as share_energy_top_decile_price_hours,
        zone_intensity_stats.intensity_p90_kg_per_kwh,
        coalesce(aggregated.top_intensity_kwh, 0) / nullif(aggregated.rated_kwh, 0)
            as share_energy_top_decile_carbon_hours,
        aggregated.kwh_price_product / nullif(aggregated.priced_kwh, 0) as avg_price_paid_per_mwh,
        zone_price_stats.avg_zone_price_per_mwh,
        aggregated.currency,
        aggregated.kwh_intensity_product / nullif(aggregated.rated_kwh, 0) as avg_grid_intensity_paid_kg_per_kwh,
        zone_intensity_stats.avg_zone_intensity_kg_per_kwh

    from windows
    inner join aggregated
        on windows.facility_id = aggregated.facility_id
    left join zone_price_stats
        on windows.facility_id = zone_price_stats.facility_id
    left join zone_intensity_stats
        on windows.facility_id = zone_intensity_stats.facility_id

)

select * from final
