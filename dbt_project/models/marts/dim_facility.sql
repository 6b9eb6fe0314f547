with facilities as (

    select * from {{ ref('stg_facilities') }}

),

meters as (

    select * from {{ ref('stg_meters') }}

),

metered as (

    select
        facility_id,
        count(*) filter (where is_active) as active_meter_count,
        count(*) as meter_count,
        string_agg(distinct energy_source, ',' order by energy_source)
            filter (where is_active and energy_source <> 'grid') as onsite_sources

    from meters
    group by facility_id

),

final as (

    select
        facilities.facility_id,
        facilities.facility_name,
        facilities.archetype,
        facilities.timezone,
        facilities.latitude,
        facilities.longitude,
        facilities.contract_demand_kw,
        facilities.price_zone,
        facilities.grid_zone,
        facilities.is_active,
        coalesce(metered.active_meter_count, 0) as active_meter_count,
        coalesce(metered.meter_count, 0) as meter_count,
        metered.onsite_sources,
        metered.onsite_sources is not null as has_onsite_supply,
        facilities.first_seen_at,
        facilities.last_seen_at

    from facilities
    left join metered
        on facilities.facility_id = metered.facility_id

)

select * from final
