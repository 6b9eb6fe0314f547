with source as (

    select * from {{ source('raw', 'grid_prices') }}

),

zone_currencies as (

    select price_zone, currency from {{ ref('price_zone_currencies') }}

),

renamed as (

    select
        source.zone as price_zone,
        source.interval_start,
        source.interval_end,
        source.resolution,
        source.source as price_source,
        source.price_per_mwh,
        -- What the feed states wins; a silent feed (bare ¢/kWh) prices in its zone's
        -- currency; neither is no currency, never an assumed one.
        coalesce(source.currency, zone_currencies.currency) as currency,
        case
            when source.currency is not null then 'feed'
            when zone_currencies.currency is not null then 'zone'
        end as currency_source,
        source.intervals as averaged_intervals

    from source
    left join zone_currencies
        on source.zone = zone_currencies.price_zone

)

select * from renamed
