with source as (

    select * from {{ source('raw', 'grid_carbon_intensity') }}

),

renamed as (

    select
        zone as grid_zone,
        hour_start,
        factor_type,
        carbon_intensity_g_per_kwh,
        carbon_intensity_g_per_kwh / 1000.0 as carbon_intensity_kg_per_kwh,
        is_estimated,
        estimation_method

    from source

)

select * from renamed
