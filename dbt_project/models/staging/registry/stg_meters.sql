with source as (

    select * from {{ source('raw', 'meters') }}

),

renamed as (

    select
        meter_id,
        facility_id,
        coalesce(energy_source, 'grid') as energy_source,
        end_use,
        interval_s,
        active as is_active,
        first_seen_at,
        last_seen_at

    from source

)

select * from renamed
