{#-
    The price the platform bills a zone's hour at: the settled real-time price (the hourly
    average of the 5-minute prices) where the zone has one, else the day-ahead price.
-#}

with hourly_prices as (

    select * from {{ ref('stg_grid_prices') }}
    where resolution = '1h'

),

real_time as (

    select * from hourly_prices where price_source <> 'day_ahead'

),

day_ahead as (

    select * from hourly_prices where price_source = 'day_ahead'

),

final as (

    select
        coalesce(real_time.price_zone, day_ahead.price_zone) as price_zone,
        coalesce(real_time.interval_start, day_ahead.interval_start) as hour_start,
        coalesce(real_time.price_per_mwh, day_ahead.price_per_mwh) as price_per_mwh,
        -- The currency of the price chosen, not of whichever feed has one.
        case when real_time.price_per_mwh is not null then real_time.currency else day_ahead.currency end as currency,
        case when real_time.price_per_mwh is not null then real_time.currency_source else day_ahead.currency_source end
            as currency_source,
        case when real_time.price_per_mwh is not null then 'real_time' else 'day_ahead' end as price_source,
        real_time.averaged_intervals as real_time_intervals

    from real_time
    full outer join day_ahead
        on real_time.price_zone = day_ahead.price_zone
        and real_time.interval_start = day_ahead.interval_start

)

select * from final
