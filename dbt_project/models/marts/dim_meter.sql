with meters as (

    select * from {{ ref('stg_meters') }}

),

facilities as (

    select facility_id, facility_name, timezone from {{ ref('stg_facilities') }}

),

factors as (

    select energy_source, is_renewable from {{ ref('emission_factors') }}

),

final as (

    select
        meters.meter_id,
        meters.facility_id,
        facilities.facility_name,
        facilities.timezone,
        meters.energy_source,
        meters.energy_source = 'grid' as is_grid,
        coalesce(factors.is_renewable, false) as is_renewable,
        meters.end_use,
        meters.interval_s,
        meters.is_active,
        meters.first_seen_at,
        meters.last_seen_at

    from meters
    left join facilities
        on meters.facility_id = facilities.facility_id
    left join factors
        on meters.energy_source = factors.energy_source

)

select * from final
