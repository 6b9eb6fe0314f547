with source as (

    select * from {{ source('raw', 'facilities') }}

),

renamed as (

    select
        facility_id,
        name as facility_name,
        archetype,
        timezone,
        latitude,
        longitude,
        contract_demand_kw,
        price_zone,
        grid_zone,
        active as is_active,
        first_seen_at,
        last_seen_at

    from source

)

select * from renamed
