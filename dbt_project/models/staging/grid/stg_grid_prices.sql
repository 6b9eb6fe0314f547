with source as (

    select * from {{ source('raw', 'grid_prices') }}

),

renamed as (

    select
        zone as price_zone,
        interval_start,
        interval_end,
        resolution,
        source as price_source,
        price_per_mwh,
        currency,
        intervals as averaged_intervals

    from source

)

select * from renamed
